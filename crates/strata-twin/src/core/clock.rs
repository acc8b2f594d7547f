//! The twin's one source of time. Every simulated service reads "now" and waits for
//! simulated work through a [`Clock`]: the system clock when the twin serves real
//! clients, a virtual clock in tests, which only moves when the test advances it, so
//! asynchronous behaviour (builds, commissioning, Proxmox tasks, token expiry) is
//! tested in virtual time without sleeping.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the twin's time comes from. Cloning shares the same time source.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    source: Source,
}

#[derive(Clone, Debug, Default)]
enum Source {
    /// Wall-clock time; waits are tokio sleeps.
    #[default]
    System,
    /// Milliseconds since the epoch, moved only by [`Clock::advance`]; waits end when
    /// an advance passes their deadline.
    Virtual(Arc<tokio::sync::watch::Sender<u64>>),
}

impl Clock {
    /// The system clock (what a real twin uses).
    pub fn system() -> Self {
        Self::default()
    }

    /// A virtual clock that starts at `start` and moves only when advanced.
    pub fn virtual_at(start: SystemTime) -> Self {
        let ms = start
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let (tx, _) = tokio::sync::watch::channel(ms);
        Self {
            source: Source::Virtual(Arc::new(tx)),
        }
    }

    /// A virtual clock that starts at the current system time.
    pub fn virtual_now() -> Self {
        Self::virtual_at(SystemTime::now())
    }

    /// Whether this is a virtual clock.
    pub fn is_virtual(&self) -> bool {
        matches!(self.source, Source::Virtual(_))
    }

    /// Milliseconds since the epoch.
    pub fn now_ms(&self) -> u64 {
        match &self.source {
            Source::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            Source::Virtual(tx) => *tx.borrow(),
        }
    }

    /// Seconds since the epoch.
    pub fn now_secs(&self) -> i64 {
        (self.now_ms() / 1000) as i64
    }

    /// The current time as a [`SystemTime`] (for HTTP dates).
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.now_ms())
    }

    /// Move a virtual clock forward, waking the waits whose deadline has passed. The
    /// system clock cannot be moved: advancing it does nothing.
    pub fn advance(&self, by: Duration) {
        if let Source::Virtual(tx) = &self.source {
            let by = by.as_millis() as u64;
            tx.send_modify(|ms| *ms += by);
        }
    }

    /// Wait until `duration` of this clock's time has passed: a tokio sleep on the
    /// system clock, until advanced far enough on a virtual one.
    pub async fn sleep(&self, duration: Duration) {
        match &self.source {
            Source::System => tokio::time::sleep(duration).await,
            Source::Virtual(tx) => {
                let deadline = *tx.borrow() + duration.as_millis() as u64;
                let mut rx = tx.subscribe();
                // The sender lives as long as the clock, which outlives the wait.
                let _ = rx.wait_for(|ms| *ms >= deadline).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn virtual_time_moves_only_when_advanced() {
        let clock = Clock::virtual_at(UNIX_EPOCH + Duration::from_secs(100));
        assert_eq!(clock.now_ms(), 100_000);
        assert_eq!(clock.now_ms(), 100_000);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now_ms(), 101_500);
        assert_eq!(clock.now_secs(), 101);
    }

    #[tokio::test]
    async fn virtual_sleep_ends_when_the_clock_passes_its_deadline() {
        let clock = Clock::virtual_at(UNIX_EPOCH);
        let waiter = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep(Duration::from_secs(5)).await })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(4));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the wait ends")
            .expect("no panic");
    }

    #[test]
    fn system_clock_ignores_advance() {
        let clock = Clock::system();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now_ms() < before + 3_600_000);
    }
}
