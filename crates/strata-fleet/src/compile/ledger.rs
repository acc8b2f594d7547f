//! The compiler's running record: the lock it reads, the lock entries it writes, the
//! diagnostics it reports, and whether anything so far is fatal.

use std::collections::{BTreeMap, HashMap};

use strata_diagnostics::{Diagnostic, Span, codes};

use crate::alloc::{Allocation, Conflict, ConflictReason, Space, allocate_preferring};
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
    /// Where the pins of this ledger's pools were written (tenant VNIs and VLANs for
    /// the fleet, BMC addresses for a DC), so a pin that collides with the lock is
    /// reported where it was written.
    pub pin_spans: PinSpans,
}

/// Where pins were written: `(pool, allocation key)` → span.
pub(crate) type PinSpans = HashMap<(String, String), Span>;

impl<'a> Ledger<'a> {
    pub fn new(old: &'a Lock) -> Self {
        Ledger {
            old,
            pools: Vec::new(),
            diags: Vec::new(),
            fatal: false,
            pin_spans: PinSpans::new(),
        }
    }

    /// This ledger, knowing where its pools' pins were written.
    pub fn with_pin_spans(mut self, pin_spans: PinSpans) -> Self {
        self.pin_spans = pin_spans;
        self
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
        report_allocation(
            &mut self.diags,
            &pool,
            what,
            &space,
            &a,
            span,
            &self.pin_spans,
        );
        if a.exhausted() || !a.conflicts.is_empty() {
            self.fatal = true;
        }
        self.pools.push((pool, a.lock.clone()));
        a
    }
}

/// S0604: a pin took a slot that fleet.lock records for another object. The pin is
/// the mistake; the object that already has the slot keeps it.
fn pin_collides_with_lock(
    pool: &str,
    what: &str,
    c: &Conflict,
    pin: &str,
    at: Option<Span>,
) -> Diagnostic {
    Diagnostic::new(
        codes::S0604,
        format!(
            "`{pin}` pins `{}` of the {what}, which fleet.lock already gives to `{}`",
            c.recorded, c.key
        ),
    )
    .at_opt(at)
    .expected(format!(
        "a value that `{pool}` in fleet.lock does not hold for another object"
    ))
    .help(format!(
        "pin `{pin}` to a free value, or remove the pin to have one allocated; `{}` keeps `{}`",
        c.key, c.recorded
    ))
}

/// Report the lock conflicts and the exhaustion of one allocation.
pub(crate) fn report_allocation(
    diags: &mut Vec<Diagnostic>,
    pool: &str,
    what: &str,
    space: &Space,
    a: &Allocation,
    span: Option<Span>,
    pin_spans: &PinSpans,
) {
    // A pool that shrank or moved strands every entry outside it: one cause, one
    // diagnostic that lists them.
    let outside: Vec<String> = a
        .conflicts
        .iter()
        .filter(|c| c.reason == ConflictReason::OutsidePool)
        .map(|c| format!("`{}` ({})", c.key, c.recorded))
        .collect();
    if outside.len() > 1 {
        let shown = outside
            .iter()
            .take(6)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let more = outside.len().saturating_sub(6);
        diags.push(
            Diagnostic::new(
                codes::S0603,
                format!(
                    "fleet.lock records {} {what} outside the pool as the spec now defines it: {shown}{}",
                    outside.len(),
                    if more > 0 { format!(" and {more} more") } else { String::new() }
                ),
            )
            .at_opt(span)
            .expected("every recorded allocation inside its pool")
            .help(format!(
                "strata never moves an allocation silently: restore the pool, or delete those entries from `{pool}` in fleet.lock to re-allocate them"
            )),
        );
    }
    for c in &a.conflicts {
        if let Some(pin) = &c.pinned_by {
            let at = pin_spans.get(&(pool.to_string(), pin.clone())).copied();
            diags.push(pin_collides_with_lock(pool, what, c, pin, at.or(span)));
            continue;
        }
        let why = match c.reason {
            ConflictReason::OutsidePool if outside.len() > 1 => continue,
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
    fn entries_a_shrunk_pool_strands_are_one_diagnostic() {
        let mut old = Lock::new();
        old.set_pool(
            "p".into(),
            [("a", "7"), ("b", "8"), ("c", "1")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let mut l = Ledger::new(&old);
        let space = Space::Numbers { first: 1, last: 4 };
        l.alloc("p".into(), "things", space, ["a", "b", "c"], &[], None);
        assert!(l.fatal);
        assert_eq!(l.diags.len(), 1, "{:#?}", l.diags);
        assert_eq!(l.diags[0].code, codes::S0603);
        assert!(
            l.diags[0]
                .message
                .contains("records 2 things outside the pool")
        );
    }

    #[test]
    fn a_pin_on_a_recorded_value_is_reported_at_the_pin() {
        use strata_diagnostics::SourceMap;
        let mut sources = SourceMap::new();
        let pin_at = Span::file_start(sources.add("spec.yaml", "pin"));
        let mut old = Lock::new();
        old.set_pool(
            "p".into(),
            [("works".to_string(), "3".to_string())]
                .into_iter()
                .collect(),
        );
        let pins: PinSpans = [(("p".to_string(), "new".to_string()), pin_at)]
            .into_iter()
            .collect();
        let mut l = Ledger::new(&old).with_pin_spans(pins);
        let space = Space::Numbers { first: 1, last: 9 };
        l.alloc(
            "p".into(),
            "things",
            space,
            ["works"],
            &[("new".to_string(), 2)],
            None,
        );
        assert!(l.fatal);
        assert_eq!(l.diags.len(), 1, "{:#?}", l.diags);
        assert_eq!(l.diags[0].code, codes::S0604);
        assert_eq!(l.diags[0].span, Some(pin_at));
        assert!(l.diags[0].message.starts_with("`new` pins `3`"));
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
