//! The accounting shared with Nova's scheduler: which resource classes and traits exist,
//! what a provider has used, its capacity, whether a request fits, and writing or releasing
//! a consumer's allocations.

use super::*;

pub(crate) fn rc_exists(st: &State, rc: &str) -> bool {
    STANDARD_RESOURCE_CLASSES.contains(&rc) || st.custom_rcs.iter().any(|c| c == rc)
}

pub(super) fn trait_exists(st: &State, t: &str) -> bool {
    STANDARD_TRAITS.contains(&t) || st.custom_traits.iter().any(|c| c == t)
}

/// Amount of each class allocated on a provider.
pub(crate) fn used(st: &State, rp: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for c in st.consumers.values() {
        if let Some(a) = c.allocations.get(rp) {
            for (rc, n) in a {
                *out.entry(rc.clone()).or_insert(0) += n;
            }
        }
    }
    out
}

pub(crate) fn capacity(i: &Inventory) -> i64 {
    ((i.total - i.reserved) as f64 * i.allocation_ratio) as i64
}

/// Can `rp` take these amounts on top of what it already has?
pub(crate) fn fits(st: &State, rp: &ResourceProvider, want: &BTreeMap<String, i64>) -> bool {
    let used = used(st, &rp.uuid);
    want.iter().all(|(rc, n)| {
        rp.inventories.get(rc).is_some_and(|inv| {
            *n >= inv.min_unit
                && *n <= inv.max_unit
                && (n % inv.step_size.max(1)) == 0
                && used.get(rc).copied().unwrap_or(0) + n <= capacity(inv)
        })
    })
}

/// Write a consumer's allocations (replacing what it had), bumping generations.
pub(crate) fn set_allocations(
    st: &mut State,
    consumer: &str,
    project: &str,
    user: &str,
    consumer_type: Option<&str>,
    allocs: BTreeMap<String, BTreeMap<String, i64>>,
    now: i64,
) {
    let mut touched: BTreeSet<String> = allocs.keys().cloned().collect();
    if let Some(old) = st.consumers.get(consumer) {
        touched.extend(old.allocations.keys().cloned());
    }
    for rp in st.rps.iter_mut().filter(|r| touched.contains(&r.uuid)) {
        rp.generation += 1;
        rp.updated_ms = now;
    }
    if allocs.is_empty() {
        st.consumers.remove(consumer);
        return;
    }
    let generation = st
        .consumers
        .get(consumer)
        .map(|c| c.generation + 1)
        .unwrap_or(1);
    st.consumers.insert(
        consumer.to_string(),
        Consumer {
            project_id: project.to_string(),
            user_id: user.to_string(),
            generation,
            consumer_type: consumer_type.map(str::to_string),
            allocations: allocs,
        },
    );
}

/// Remove a consumer's allocations.
pub(crate) fn release(st: &mut State, consumer: &str) {
    if st.consumers.remove(consumer).is_some() {
        // Deleting allocations does not bump provider generations.
    }
}
