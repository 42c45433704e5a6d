//! Owns waiting: `wait_until` polls a condition until it holds or a deadline passes, so every
//! wait in apply has a timeout and says what it waits for.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// A wait that ran out of time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("gave up waiting for {what} after {waited:?}{}", last.as_deref().map(|l| format!(" (last: {l})")).unwrap_or_default())]
pub struct TimedOut {
    pub what: String,
    pub waited: Duration,
    pub last: Option<String>,
}

/// Polls `check` every `poll` until it yields `Some`, or fails at `deadline`. Errors from
/// `check` count as "not yet" (servers can blip); the last one is reported on timeout.
///
/// # Errors
/// [`TimedOut`] naming `what`.
pub async fn wait_until<T, E, F, Fut>(
    what: &str,
    deadline: Instant,
    poll: Duration,
    mut check: F,
) -> Result<T, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let mut last = None;
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(Some(v))) => return Ok(v),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => last = Some(e.to_string()),
            Err(_) => {}
        }
        if Instant::now() + poll > deadline {
            return Err(TimedOut {
                what: what.into(),
                waited: started.elapsed(),
                last,
            });
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_until_the_condition_holds() {
        let mut n = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        let got = wait_until("n to reach 3", deadline, Duration::from_secs(1), || {
            n += 1;
            let v = n;
            async move { Ok::<_, String>((v >= 3).then_some(v)) }
        })
        .await;
        assert_eq!(got.unwrap(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_naming_what_and_the_last_error() {
        let deadline = Instant::now() + Duration::from_secs(3);
        let err = wait_until("the moon", deadline, Duration::from_secs(1), || async {
            Err::<Option<()>, _>("cloudy")
        })
        .await
        .unwrap_err();
        assert_eq!(err.what, "the moon");
        assert!(err.to_string().contains("(last: cloudy)"), "{err}");
    }
}
