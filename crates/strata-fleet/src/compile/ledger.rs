//! The compiler's running record: the lock it reads, the lock entries it writes, the
//! diagnostics it reports, and whether anything so far is fatal.

use std::collections::BTreeMap;

use strata_diagnostics::{Diagnostic, Span, codes};

use crate::alloc::{Allocation, ConflictReason, Space, allocate_preferring};
use crate::lock::Lock;

/// What one phase (or one DC) allocated and reported.
pub(crate) struct Ledger<'a> {
    /// The lock the compile started from.
    pub old: &'a Lock,
    /// New lock entries, pool by pool.
    pub pools: Vec<(String, BTreeMap<String, String>)>,
    pub diags: Vec<Diagnostic>,
    /// A lock conflict, an exhausted pool, or an error that leaves objects unresolved.
    pub fatal: bool,
}

impl<'a> Ledger<'a> {
    pub fn new(old: &'a Lock) -> Self {
        Ledger {
            old,
            pools: Vec::new(),
            diags: Vec::new(),
            fatal: false,
        }
    }

    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    /// Take over another ledger's entries and reports (a DC built on its own).
    pub fn absorb(&mut self, other: Ledger<'_>) {
        self.pools.extend(other.pools);
        self.diags.extend(other.diags);
        self.fatal |= other.fatal;
    }

    /// The lock holding every entry recorded.
    pub fn into_lock(self) -> Lock {
        let mut lock = Lock::new();
        for (pool, entries) in self.pools {
            lock.set_pool(pool, entries);
        }
        lock
    }

    /// Allocate from a pool, recording the new lock entries and reporting trouble.
    pub fn alloc<'k>(
        &mut self,
        pool: String,
        what: &str,
        space: Space,
        keys: impl IntoIterator<Item = &'k str>,
        pins: &[(String, u128)],
        span: Option<Span>,
    ) -> Allocation {
        self.alloc_preferring(pool, what, space, keys, pins, &BTreeMap::new(), span)
    }

    /// [`Self::alloc`] where new keys first try a preferred slot.
    #[allow(clippy::too_many_arguments)]
    pub fn alloc_preferring<'k>(
        &mut self,
        pool: String,
        what: &str,
        space: Space,
        keys: impl IntoIterator<Item = &'k str>,
        pins: &[(String, u128)],
        preferred: &BTreeMap<String, u128>,
        span: Option<Span>,
    ) -> Allocation {
        let a = allocate_preferring(&space, keys, pins, preferred, self.old.pool(&pool));
        report_allocation(&mut self.diags, &pool, what, &space, &a, span);
        if a.exhausted() || !a.conflicts.is_empty() {
            self.fatal = true;
        }
        self.pools.push((pool, a.lock.clone()));
        a
    }
}

/// Report the lock conflicts and the exhaustion of one allocation.
pub(crate) fn report_allocation(
    diags: &mut Vec<Diagnostic>,
    pool: &str,
    what: &str,
    space: &Space,
    a: &Allocation,
    span: Option<Span>,
) {
    for c in &a.conflicts {
        let why = match c.reason {
            ConflictReason::OutsidePool => "is outside the pool as the spec now defines it",
            ConflictReason::Taken => "is already held by another object",
        };
        diags.push(
            Diagnostic::new(
                codes::S0603,
                format!("fleet.lock gives `{}` the {what} value `{}`, which {why}", c.key, c.recorded),
            )
            .at_opt(span)
            .expected("every recorded allocation inside its pool and unique")
            .help(format!(
                "strata never moves an allocation silently: restore the pool, or delete `{}` from `{pool}` in fleet.lock to re-allocate it",
                c.key
            )),
        );
    }
    if a.exhausted() {
        let needed = a.slots.len() + a.unallocated.len();
        diags.push(
            Diagnostic::new(
                codes::S0302,
                format!(
                    "pool `{pool}` is exhausted: {needed} {what} needed, {} available",
                    space.size()
                ),
            )
            .at_opt(span)
            .expected(format!("room for at least {needed} {what}"))
            .help("enlarge the pool (a shorter prefix or a wider range), or use fewer objects"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_recorded_and_trouble_is_fatal() {
        let mut old = Lock::new();
        old.set_pool(
            "p".into(),
            [("a".to_string(), "9".to_string())].into_iter().collect(),
        );
        let mut l = Ledger::new(&old);
        let space = Space::Numbers { first: 1, last: 2 };
        let a = l.alloc("q".into(), "things", space, ["x", "y"], &[], None);
        assert_eq!(a.lock["y"], "2");
        assert!(!l.fatal && l.diags.is_empty());
        // `a` is recorded outside the pool: a conflict, reported and fatal.
        l.alloc("p".into(), "things", space, ["a"], &[], None);
        assert!(l.fatal);
        assert_eq!(l.diags[0].code, codes::S0603);
        let lock = l.into_lock();
        assert_eq!(lock.pool("q").map(|p| p.len()), Some(2));
        assert_eq!(
            lock.pool("p").and_then(|p| p.get("a")).map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn an_exhausted_pool_is_reported() {
        let old = Lock::new();
        let mut l = Ledger::new(&old);
        l.alloc(
            "p".into(),
            "things",
            Space::Numbers { first: 1, last: 1 },
            ["a", "b"],
            &[],
            None,
        );
        assert!(l.fatal);
        assert_eq!(l.diags[0].code, codes::S0302);
        assert!(l.diags[0].message.contains("2 things needed, 1 available"));
    }
}
