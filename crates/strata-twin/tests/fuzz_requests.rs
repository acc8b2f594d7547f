//! No input panics an API handler: random requests, decoded from random bytes by
//! `strata_twin::local` into requests aimed at the routes each service really serves
//! (with valid credentials most of the time), against a fresh in-process DC.
//!
//! The same decoder drives the `twin_api` cargo-fuzz target for longer runs
//! (`fuzz/`); inputs it ever found crashing live in `fuzz/regressions/twin_api/` and are
//! replayed here.

use std::path::Path;

use proptest::prelude::*;
use strata_twin::local::{LocalDc, Target};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Send a batch of requests decoded from `inputs` to one fresh DC; returns the statuses.
fn replay(inputs: &[Vec<u8>]) -> Vec<u16> {
    runtime().block_on(async {
        let dc = LocalDc::new(7).await.expect("local DC");
        let mut statuses = Vec::new();
        for data in inputs {
            let (target, req) = dc.request(data);
            let (resp, _) = dc.send(target, req).await;
            statuses.push(resp.status().as_u16());
        }
        statuses
    })
}

#[test]
fn every_service_lists_its_routes() {
    runtime().block_on(async {
        let dc = LocalDc::new(1).await.expect("local DC");
        for (t, at_least) in [
            (Target::Maas, 80),
            (Target::Proxmox, 40),
            (Target::OpenStack, 80),
        ] {
            let routes = dc.routes(t);
            assert!(routes.len() >= at_least, "{t:?}: {} routes", routes.len());
        }
    });
}

#[test]
fn decoded_requests_reach_the_handlers() {
    // The decoder must not stop at the router or at authentication: over a fixed set of
    // inputs most requests are answered by a handler (neither 401 nor a router 404/405).
    let inputs: Vec<Vec<u8>> = (0u32..600)
        .map(|i| {
            let mut x = i.wrapping_mul(2_654_435_761);
            (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect()
        })
        .collect();
    let statuses = replay(&inputs);
    let mut histogram = std::collections::BTreeMap::new();
    for s in &statuses {
        *histogram.entry(*s).or_insert(0usize) += 1;
    }
    eprintln!("statuses: {histogram:?}");
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let ok = statuses.iter().filter(|s| (200..300).contains(*s)).count();
    // Answers only a handler gives: success, or a refusal of the body or the object's
    // state (the router answers 404/405, authentication 401).
    let handled = statuses
        .iter()
        .filter(|s| (200..300).contains(*s) || matches!(**s, 400 | 403 | 409 | 422))
        .count();
    assert!(
        unauthorized < statuses.len() / 4,
        "{unauthorized} of {} got 401",
        statuses.len()
    );
    assert!(
        ok > statuses.len() / 20 && handled > statuses.len() / 5,
        "only {ok} of {} succeeded and {handled} were answered by a handler",
        statuses.len()
    );
}

#[test]
fn recorded_crash_inputs_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/twin_api");
    let inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("fuzz/regressions/twin_api")
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    assert!(!inputs.is_empty(), "no inputs in {}", dir.display());
    // Each file is a session, split on 0xFF as the cargo-fuzz target does.
    for session in &inputs {
        let requests: Vec<Vec<u8>> = session
            .split(|b| *b == 0xff)
            .take(16)
            .map(<[u8]>::to_vec)
            .collect();
        assert_eq!(replay(&requests).len(), requests.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A session of up to 40 random requests against one DC never panics a handler
    /// and always gets an HTTP answer.
    #[test]
    fn no_request_panics_a_handler(inputs in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..192), 1..40)) {
        let statuses = replay(&inputs);
        prop_assert_eq!(statuses.len(), inputs.len());
        for s in statuses {
            prop_assert!((100..600).contains(&s));
        }
    }
}
