//! The one path every request takes before an operation is served: latency, outages, stalls,
//! injected faults, rate limits, and the call log. An operation in `ops/` runs only after
//! [`Twin::enter`] let its call through.

use crate::state::{err, Call, Twin};
use kms_replicator::op::Op;
use kms_replicator::port::{ErrorKind, KmsResult};
use std::time::Instant;

impl Twin {
    /// Every KMS call goes through here: latency, outages, stalls, faults, rate limits, call
    /// log.
    pub(crate) async fn enter(&self, region: &str, op: Op) -> KmsResult<()> {
        let latency = self.lock().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let stalled = {
            let mut s = self.lock();
            s.calls.push(Call {
                region: region.to_string(),
                op,
                caller: self.caller.clone(),
                at: Instant::now(),
            });
            if s.is_down(region) {
                return Err(err(
                    ErrorKind::Unreachable,
                    op,
                    region,
                    "DispatchFailure",
                    format!("connection to kms.{region}.amazonaws.com timed out"),
                ));
            }
            if s.is_not_enabled(region) {
                return Err(err(
                    ErrorKind::Other,
                    op,
                    region,
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                ));
            }
            s.stall_for(region, op)
        };
        // Never wait with the state locked: other calls, and the test, go on meanwhile.
        if let Some((stall, mut changed)) = stalled {
            match stall.delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => loop {
                    if changed.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    if !self.lock().stalls.contains(&stall) {
                        return Err(err(
                            ErrorKind::Unreachable,
                            op,
                            region,
                            "TimeoutError",
                            format!(
                                "kms.{region}.amazonaws.com accepted the request and never \
                                 answered (stalled)"
                            ),
                        ));
                    }
                },
            }
        }
        let mut s = self.lock();
        s.take_fault(region, op)?;
        s.charge(region, op)?;
        s.settle();
        Ok(())
    }
}
