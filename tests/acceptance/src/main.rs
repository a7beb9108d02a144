//! `kms-acceptance` (`make acceptance`): the user journeys against a deployed stack in an AWS
//! account, then cleanup, then a report per step. It refuses to start, before any AWS client
//! exists, unless `KMS_REPLICATOR_ACCEPTANCE=1`. The exit status is 0 only when every step
//! passed (or did not apply) and cleanup left nothing behind; 2 for a refusal or a usage error.

use acceptance::settings::USAGE;
use acceptance::{opted_in, run, Settings, OPT_IN, REFUSAL};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if !opted_in(std::env::var(OPT_IN).ok().as_deref()) {
        eprintln!("{REFUSAL}");
        return ExitCode::from(2);
    }
    let settings = match Settings::from_args(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kms-acceptance: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kms-acceptance: no async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(run(settings.clone()));
    print!("{}", report.text());
    if let Some(file) = &settings.report {
        if let Err(e) = std::fs::write(file, report.json()) {
            eprintln!(
                "kms-acceptance: cannot write the report {}: {e}",
                file.display()
            );
        }
    }
    if let (false, Some(ledger)) = (report.left_behind.is_empty(), &settings.ledger) {
        eprintln!(
            "kms-acceptance: what is left is listed in {}; `kms-acceptance --cleanup --ledger {}` tries again",
            ledger.display(),
            ledger.display()
        );
    }
    if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
