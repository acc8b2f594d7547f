//! Creating something at most once, shared by the providers whose platforms cannot
//! create idempotently (a Neutron network, a Keystone project, a Nova flavor): an
//! earlier attempt may have created the object before it was interrupted, and an
//! ambiguous failure (the request may have reached the service) may have created it
//! too, so the object is looked up before any further create. Callers record their
//! intent in the [`IntentLog`](crate::IntentLog) before calling, so that `retry` is
//! known after a crash.

use std::future::Future;

use crate::ProviderError;

pub(crate) enum Made<T> {
    Created(T),
    /// It already existed (an earlier attempt, or someone else: the caller decides).
    Found(T),
}

/// Create something at most once. When an earlier attempt may have created it
/// (`retry`), after an ambiguous failure (the request may have reached the service)
/// and after a conflict, look it up before (re)trying.
pub(crate) async fn create_once<T, L, LF, C, CF>(
    retry: bool,
    lookup: L,
    create: C,
) -> Result<Made<T>, ProviderError>
where
    L: Fn() -> LF,
    LF: Future<Output = Result<Option<T>, ProviderError>>,
    C: Fn() -> CF,
    CF: Future<Output = Result<T, ProviderError>>,
{
    let mut look = retry;
    let mut last = None;
    for _ in 0..4 {
        if look && let Some(found) = lookup().await? {
            return Ok(Made::Found(found));
        }
        // A conflict with nothing to find is a real conflict (a VLAN in use, ...).
        if let Some(conflict) = last.take_if(|e: &mut ProviderError| e.is_conflict()) {
            return Err(conflict);
        }
        match create().await {
            Ok(made) => return Ok(Made::Created(made)),
            Err(e) if e.is_ambiguous() || e.is_conflict() => {
                tracing::debug!("create failed ({e}); looking again before retrying");
                look = true;
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| ProviderError::Api("create did not complete".into())))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use reqwest::Method;

    use super::*;

    fn http_error(status: u16) -> ProviderError {
        ProviderError::Http(crate::http::HttpError::Status {
            method: Method::POST,
            url: "http://x/things".into(),
            status: reqwest::StatusCode::from_u16(status).expect("status"),
            body: "{}".into(),
        })
    }

    #[tokio::test]
    async fn creates_happen_at_most_once() {
        // An ambiguous failure (502): look before trying again, and find it.
        let posts = AtomicUsize::new(0);
        let looks = AtomicUsize::new(0);
        let made = create_once(
            false,
            || async {
                looks.fetch_add(1, Ordering::SeqCst);
                Ok(Some("existing"))
            },
            || async {
                posts.fetch_add(1, Ordering::SeqCst);
                Err::<&str, _>(http_error(502))
            },
        )
        .await
        .expect("found");
        assert!(matches!(made, Made::Found("existing")));
        assert_eq!((posts.into_inner(), looks.into_inner()), (1, 1));

        // An earlier attempt may have made it: look first.
        let posts = AtomicUsize::new(0);
        let made = create_once(
            true,
            || async { Ok(None) },
            || async {
                posts.fetch_add(1, Ordering::SeqCst);
                Ok("new")
            },
        )
        .await
        .expect("created");
        assert!(matches!(made, Made::Created("new")));
        assert_eq!(posts.into_inner(), 1);

        // A conflict with nothing of ours to find is returned as it is, once.
        let posts = AtomicUsize::new(0);
        let e = create_once(
            false,
            || async { Ok::<Option<&str>, _>(None) },
            || async {
                posts.fetch_add(1, Ordering::SeqCst);
                Err(http_error(409))
            },
        )
        .await
        .err()
        .expect("conflict");
        assert!(e.is_conflict());
        assert_eq!(posts.into_inner(), 1);

        // A plain refusal (400) is not retried.
        let posts = AtomicUsize::new(0);
        let e = create_once(
            false,
            || async { Ok::<Option<&str>, _>(None) },
            || async {
                posts.fetch_add(1, Ordering::SeqCst);
                Err(http_error(400))
            },
        )
        .await
        .err()
        .expect("bad request");
        assert_eq!(e.status(), Some(400));
        assert_eq!(posts.into_inner(), 1);
    }
}
