//! The twin's API handlers (MAAS, Proxmox VE, OpenStack) on arbitrary requests.
//!
//! Each input is a session: split on 0xFF into up to 16 requests, each decoded by
//! `strata_twin::local` into a request aimed at a route the service serves (valid
//! credentials most of the time), all sent in order to one fresh in-process DC, so
//! sequences (create, then act on what was created) are explored too. A panic in any
//! handler is a crash. Crashing inputs go to `fuzz/regressions/twin_api/`, which
//! `crates/strata-twin/tests/fuzz_requests.rs` replays in every test run.
//!
//!     RUSTC_BOOTSTRAP=1 cargo fuzz run twin_api -- -max_total_time=600
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strata_twin::local::LocalDc;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        let dc = LocalDc::new(7).await.expect("a fresh local DC");
        for chunk in data.split(|b| *b == 0xff).take(16) {
            let (target, req) = dc.request(chunk);
            let _ = dc.send(target, req).await;
        }
    });
});
