//! Bounded waiting: ask again every `poll` until the answer is there or `bound` has passed,
//! and say what was seen last. In AWS the replicator acts after CloudTrail delivers the event,
//! which takes seconds to minutes; against the twin, milliseconds.

use crate::report::{Journal, Problem};
use std::future::Future;
use std::time::{Duration, Instant};

/// One look.
pub enum Probe<T> {
    Done(T),
    /// Not there yet: what is seen now.
    NotYet(String),
    /// Waiting longer cannot help (an AccessDenied, a key in a state it cannot leave).
    Failed(Problem),
}

/// Why a wait ended without its answer.
#[derive(Debug)]
pub enum WaitError {
    TimedOut { after: Duration, last: String },
    Failed(Problem),
}

impl WaitError {
    /// The problem a step reports, with `what` it waited for.
    pub fn problem(self, what: &str) -> Problem {
        match self {
            WaitError::TimedOut { after, last } => Problem::new(format!(
                "{what}: not so after {} (--wait); last seen: {last}",
                humantime::format_duration(Duration::from_secs(after.as_secs()))
            )),
            WaitError::Failed(p) => p,
        }
    }
}

/// Looks with `probe` until it is done, fails, or `bound` has passed; returns the answer and
/// how long it took. Each look that changes what is seen is shown on `journal`'s live output.
pub async fn until<T, F, Fut>(
    journal: &Journal,
    bound: Duration,
    poll: Duration,
    mut probe: F,
) -> Result<(T, Duration), WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Probe<T>>,
{
    let started = Instant::now();
    let mut last = String::from("nothing yet");
    loop {
        match probe().await {
            Probe::Done(v) => return Ok((v, started.elapsed())),
            Probe::Failed(p) => return Err(WaitError::Failed(p)),
            Probe::NotYet(seen) => {
                if seen != last {
                    journal.progress(&seen);
                    last = seen;
                }
            }
        }
        let elapsed = started.elapsed();
        if elapsed >= bound {
            return Err(WaitError::TimedOut {
                after: elapsed,
                last,
            });
        }
        tokio::time::sleep(poll.min(bound - elapsed)).await;
    }
}

/// Seconds, for what a step saw.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_wait_returns_as_soon_as_the_answer_is_there() {
        let n = AtomicU32::new(0);
        let (v, took) = until(
            &Journal::new(false),
            Duration::from_secs(5),
            Duration::from_millis(5),
            || async {
                match n.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Probe::NotYet("creating".into()),
                    k => Probe::Done(k),
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 2);
        assert!(took < Duration::from_secs(1), "{took:?}");
    }

    #[tokio::test]
    async fn a_wait_ends_at_its_bound_with_what_it_saw_last() {
        let started = Instant::now();
        let e = until::<(), _, _>(
            &Journal::new(false),
            Duration::from_millis(120),
            Duration::from_millis(50),
            || async { Probe::NotYet("us-west-2: no replica".into()) },
        )
        .await
        .unwrap_err();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(120) && took < Duration::from_secs(2),
            "{took:?}"
        );
        let p = e.problem("a replica in us-west-2");
        assert!(
            p.message
                .starts_with("a replica in us-west-2: not so after"),
            "{}",
            p.message
        );
        assert!(
            p.message.ends_with("last seen: us-west-2: no replica"),
            "{}",
            p.message
        );
    }

    #[tokio::test]
    async fn a_failed_look_ends_the_wait_at_once() {
        let e = until::<(), _, _>(
            &Journal::new(false),
            Duration::from_secs(60),
            Duration::from_millis(10),
            || async { Probe::Failed(Problem::new("AccessDenied")) },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, WaitError::Failed(p) if p.message == "AccessDenied"));
    }
}
