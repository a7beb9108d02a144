//! CloudTrail -> EventBridge -> Lambda, locally. Each write the twin accepts leaves the
//! EventBridge event of its CloudTrail record in the twin's trail; the bus takes them, matches
//! each against the template's rules and invokes the target function asynchronously, as
//! EventBridge does. The function's own writes come back the same way until nothing is left.
//!
//! Each Region has its own default bus, and CloudTrail puts an event only on the bus of the
//! Region of the call. The main template's rules sit on the home Region's bus; in a Region where
//! the forwarder stack runs, its rule (read from `forwarder.yaml`) sends what it matches on to the
//! home bus, where the main rules see it with its `region` unchanged. An event of any other
//! Region reaches no rule.

use crate::lambda::LambdaFunction;
use crate::pattern::{ForwardRuleDef, RuleDef};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use twin::Twin;

/// A rule and, when the function runs here, where its events go.
pub struct Route {
    pub rule: RuleDef,
    pub function: Option<Arc<LambdaFunction>>,
}

/// Where the forwarder stack (`forwarder.yaml`) is deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardRegions {
    /// Every Region other than the home Region (the default: as one deployment per managed Region).
    AllOthers,
    /// Only these Regions.
    Only(BTreeSet<String>),
}

/// The forwarder's rules, and the Regions that run them.
#[derive(Debug, Clone)]
pub struct Forwarding {
    pub rules: Vec<ForwardRuleDef>,
    pub regions: ForwardRegions,
}

impl Forwarding {
    /// No forwarder anywhere: only the home Region's events reach the main rules.
    pub fn none() -> Forwarding {
        Forwarding {
            rules: Vec::new(),
            regions: ForwardRegions::Only(BTreeSet::new()),
        }
    }

    fn runs_in(&self, region: &str) -> bool {
        match &self.regions {
            ForwardRegions::AllOthers => true,
            ForwardRegions::Only(set) => set.contains(region),
        }
    }
}

/// One event that went through the bus.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: usize,
    pub event: Value,
    /// Rules of the home Region's bus whose pattern matched.
    pub matched: Vec<String>,
    /// The forwarder's rule that sent it from its Region's bus to the home bus, as
    /// `KmsApiCallForwardRule@eu-west-1`; `None` for an event of the home Region, or one that
    /// stayed on its own Region's bus.
    pub forwarded_by: Option<String>,
    /// Functions it was sent to.
    pub delivered_to: Vec<String>,
}

impl Delivery {
    pub fn event_name(&self) -> &str {
        self.event["detail"]["eventName"].as_str().unwrap_or("")
    }

    pub fn region(&self) -> &str {
        self.event["region"].as_str().unwrap_or("")
    }

    /// The caller: the role (session issuer) or user ARN.
    pub fn caller(&self) -> String {
        kms_replicator::event::caller_arn(&self.event["detail"]).unwrap_or_default()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "seq": self.seq,
            "eventName": self.event_name(),
            "region": self.region(),
            "caller": self.caller(),
            "forwardedBy": self.forwarded_by,
            "matchedRules": self.matched,
            "deliveredTo": self.delivered_to,
            "event": self.event,
        })
    }
}

pub struct Bus {
    twin: Twin,
    home_region: String,
    forwarding: Forwarding,
    routes: Vec<Route>,
    history: Mutex<Vec<Delivery>>,
    /// Asynchronous invocations in progress, plus one while a batch is being routed.
    in_progress: Arc<AtomicUsize>,
    wake: Notify,
    retry_delay: Duration,
    /// CloudTrail's delay before an event reaches EventBridge, in ms (0: none).
    delivery_delay_ms: AtomicU64,
}

impl Bus {
    pub fn new(
        twin: Twin,
        home_region: &str,
        forwarding: Forwarding,
        routes: Vec<Route>,
        in_progress: Arc<AtomicUsize>,
        retry_delay: Duration,
    ) -> Arc<Bus> {
        Arc::new(Bus {
            twin,
            home_region: home_region.to_string(),
            forwarding,
            routes,
            history: Mutex::new(Vec::new()),
            in_progress,
            wake: Notify::new(),
            retry_delay,
            delivery_delay_ms: AtomicU64::new(0),
        })
    }

    /// The routing loop; runs until the task is aborted.
    pub fn spawn(bus: &Arc<Bus>) -> JoinHandle<()> {
        let b = bus.clone();
        tokio::spawn(async move {
            loop {
                let _ = tokio::time::timeout(Duration::from_millis(50), b.wake.notified()).await;
                b.route_trail();
            }
        })
    }

    /// Every event reaches its rule's target `d` after the call that made it, as CloudTrail's
    /// delivery to EventBridge takes a while (AWS states no bound).
    pub fn set_delivery_delay(&self, d: Duration) {
        self.delivery_delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Routes what is in the trail now (called after each request, and every 50 ms for writes
    /// made on the twin directly).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    pub fn rules(&self) -> Vec<&RuleDef> {
        self.routes.iter().map(|r| &r.rule).collect()
    }

    pub fn home_region(&self) -> &str {
        &self.home_region
    }

    pub fn forwarding(&self) -> &Forwarding {
        &self.forwarding
    }

    /// How an event of `region` reaches the home bus: `Ok(None)` for the home Region itself,
    /// `Ok(Some(rule@region))` through a forwarder's rule, `Err(())` when it stays on its own
    /// Region's bus (no forwarder there, or none of its rules matched).
    fn to_home_bus(&self, event: &Value) -> Result<Option<String>, ()> {
        let region = event["region"].as_str().unwrap_or("");
        if region == self.home_region {
            return Ok(None);
        }
        if !self.forwarding.runs_in(region) {
            return Err(());
        }
        self.forwarding
            .rules
            .iter()
            .find(|r| r.pattern.matches(event))
            .map(|r| Some(format!("{}@{region}", r.name)))
            .ok_or(())
    }

    fn route_trail(&self) {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        let events = self.twin.take_trail();
        for event in events {
            let mut matched = Vec::new();
            let mut delivered_to = Vec::new();
            let (home, forwarded_by) = match self.to_home_bus(&event) {
                Ok(via) => (true, via),
                Err(()) => (false, None),
            };
            for route in self.routes.iter().filter(|_| home) {
                if !route.rule.pattern.matches(&event) {
                    continue;
                }
                matched.push(route.rule.name.clone());
                if let Some(f) = &route.function {
                    let d = &event["detail"];
                    let trigger = format!(
                        "{} {} by {}",
                        d["eventName"].as_str().unwrap_or("?"),
                        event["region"].as_str().unwrap_or("?"),
                        kms_replicator::event::caller_arn(d).unwrap_or_default()
                    );
                    let delay =
                        Duration::from_millis(self.delivery_delay_ms.load(Ordering::SeqCst));
                    if delay.is_zero() {
                        f.invoke_async(event.clone(), trigger, self.retry_delay);
                    } else {
                        // Counted as in progress while on its way.
                        self.in_progress.fetch_add(1, Ordering::SeqCst);
                        let (f, event, retry) = (f.clone(), event.clone(), self.retry_delay);
                        let in_progress = self.in_progress.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            f.invoke_async(event, trigger, retry);
                            in_progress.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    delivered_to.push(f.name().to_string());
                }
            }
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            let seq = h.len() + 1;
            h.push(Delivery {
                seq,
                event,
                forwarded_by,
                matched,
                delivered_to,
            });
        }
        self.in_progress.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn history(&self) -> Vec<Delivery> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until every write has been routed and every invocation it caused (with its own
    /// writes, recursively) has finished, retries included.
    pub async fn settle(&self, timeout: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        let mut quiet = 0;
        loop {
            self.poke();
            let busy = self.in_progress.load(Ordering::SeqCst) > 0 || !self.twin.trail().is_empty();
            if busy {
                quiet = 0;
            } else {
                quiet += 1;
                if quiet >= 3 {
                    return Ok(started.elapsed());
                }
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "the local pipeline was still busy after {:.1} s ({} invocations running)",
                    timeout.as_secs_f64(),
                    self.in_progress.load(Ordering::SeqCst)
                ));
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
}
