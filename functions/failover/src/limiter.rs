//! A tiny limiter for the UpdatePrimaryRegion quota: at most `max` calls in any rolling
//! `window`, shared by every key of a batch.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct CallWindow {
    max: usize,
    window: Duration,
    /// When the calls of the current window were let through, oldest first. The lock is held
    /// while waiting, so callers go through in the order they asked.
    sent: Mutex<VecDeque<Instant>>,
}

impl CallWindow {
    /// `max` is at least 1.
    pub fn new(max: usize, window: Duration) -> CallWindow {
        CallWindow {
            max: max.max(1),
            window,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until one more call fits in the window, and counts it.
    pub async fn acquire(&self) {
        let mut sent = self.sent.lock().await;
        loop {
            let now = Instant::now();
            while sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                sent.pop_front();
            }
            if sent.len() < self.max {
                sent.push_back(now);
                return;
            }
            let oldest = *sent.front().expect("the window is full");
            tokio::time::sleep_until(oldest + self.window).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn no_more_than_max_calls_pass_in_any_window() {
        let window = Duration::from_millis(100);
        let limiter = Arc::new(CallWindow::new(3, window));
        let started = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let l = limiter.clone();
                tokio::spawn(async move {
                    l.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap());
        }
        times.sort();
        for (i, t) in times.iter().enumerate().skip(3) {
            assert!(
                t.duration_since(times[i - 3]) >= window,
                "call {i} came too soon"
            );
        }
        // 8 calls at 3 per window: two full waits, not more.
        let took = started.elapsed();
        assert!(took >= 2 * window && took < 4 * window, "{took:?}");
    }
}
