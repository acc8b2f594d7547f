//! Tables of API objects and the list pagination every service repeats: a [`Table`] owns
//! objects keyed by id in creation order (what a list returns before it is sorted), and
//! [`page`] cuts a sorted list at a `marker` and a `limit`, saying whether a next page
//! exists. Vendor-neutral: each service turns [`MarkerNotFound`] into its own error and
//! builds its own links from the [`Page`].

use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// An object stored in a [`Table`]: it knows its own id.
pub trait Keyed {
    fn key(&self) -> &str;
}

/// Objects keyed by id, in the order they were created. Serialised as a plain sequence,
/// so state files written when a service kept a `Vec` of the same objects still load.
/// Reads go through the slice it dereferences to (`iter`, `len`, indexing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Table<T> {
    rows: Vec<T>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self { rows: Vec::new() }
    }
}

impl<T> Deref for Table<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.rows
    }
}

impl<T> From<Vec<T>> for Table<T> {
    fn from(rows: Vec<T>) -> Self {
        Self { rows }
    }
}

impl<T> FromIterator<T> for Table<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self {
            rows: iter.into_iter().collect(),
        }
    }
}

impl<'a, T> IntoIterator for &'a Table<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.rows.iter()
    }
}

impl<T: Keyed> Table<T> {
    /// The object with this id.
    pub fn get(&self, id: &str) -> Option<&T> {
        self.rows.iter().find(|r| r.key() == id)
    }

    /// The object with this id, to change in place.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        self.rows.iter_mut().find(|r| r.key() == id)
    }

    /// Whether an object with this id exists.
    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Add an object after the others; one with the same id is replaced in place (keeping
    /// its position) and returned.
    pub fn insert(&mut self, row: T) -> Option<T> {
        match self.rows.iter().position(|r| r.key() == row.key()) {
            Some(i) => Some(std::mem::replace(&mut self.rows[i], row)),
            None => {
                self.rows.push(row);
                None
            }
        }
    }

    /// Take out the object with this id.
    pub fn remove(&mut self, id: &str) -> Option<T> {
        let i = self.rows.iter().position(|r| r.key() == id)?;
        Some(self.rows.remove(i))
    }
}

impl<T> Table<T> {
    /// Every object, to change in place.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.rows.iter_mut()
    }

    /// Keep only the objects `keep` accepts.
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.rows.retain(keep);
    }

    /// The objects `matches` accepts, cloned in creation order: what a list filters
    /// before it sorts and pages.
    pub fn filtered(&self, matches: impl Fn(&T) -> bool) -> Vec<T>
    where
        T: Clone,
    {
        self.rows.iter().filter(|r| matches(r)).cloned().collect()
    }
}

/// Which side of the marker a page is taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The objects after the marker, first ones first (the usual page).
    Forward,
    /// The objects before the marker, the ones nearest it (Neutron's `page_reverse`).
    Backward,
}

/// One page of a sorted list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// At least `limit` objects were left past the marker: the page is full (Nova and
    /// Glance give a next link then, even when nothing follows).
    pub full: bool,
    /// More than `limit` objects were left past the marker: something follows the page.
    pub more: bool,
}

/// The `marker` of a list request names no object of the list.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("marker {0} not found")]
pub struct MarkerNotFound(pub String);

/// Cut `items`, already sorted, at `marker` (exclusive) and keep at most `limit` of the
/// objects on the `direction` side of it; `limit` `None` keeps them all. `key` gives an
/// object's id, compared with the marker.
pub fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    marker: Option<&str>,
    limit: Option<usize>,
    direction: Direction,
) -> Result<Page<T>, MarkerNotFound> {
    if let Some(m) = marker {
        let pos = items
            .iter()
            .position(|x| key(x) == m)
            .ok_or_else(|| MarkerNotFound(m.to_string()))?;
        match direction {
            Direction::Forward => {
                items.drain(..=pos);
            }
            Direction::Backward => items.truncate(pos),
        }
    }
    let Some(limit) = limit else {
        return Ok(Page {
            items,
            full: false,
            more: false,
        });
    };
    let full = limit > 0 && items.len() >= limit;
    let more = items.len() > limit;
    match direction {
        Direction::Forward => items.truncate(limit),
        Direction::Backward => {
            let start = items.len().saturating_sub(limit);
            items.drain(..start);
        }
    }
    Ok(Page { items, full, more })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    struct Row {
        id: String,
        n: u32,
    }

    impl Keyed for Row {
        fn key(&self) -> &str {
            &self.id
        }
    }

    fn row(id: &str, n: u32) -> Row {
        Row { id: id.into(), n }
    }

    fn ids(p: &Page<String>) -> Vec<&str> {
        p.items.iter().map(String::as_str).collect()
    }

    fn letters() -> Vec<String> {
        ["a", "b", "c", "d", "e"].map(String::from).to_vec()
    }

    #[test]
    fn table_keeps_creation_order_and_replaces_in_place() {
        let mut t = Table::default();
        assert_eq!(t.insert(row("x", 1)), None);
        assert_eq!(t.insert(row("y", 2)), None);
        assert_eq!(t.insert(row("x", 3)), Some(row("x", 1)));
        assert_eq!(t.iter().map(|r| r.n).collect::<Vec<_>>(), [3, 2]);
        assert_eq!(t.get("y"), Some(&row("y", 2)));
        if let Some(r) = t.get_mut("y") {
            r.n = 5;
        }
        assert_eq!(t.get("y").map(|r| r.n), Some(5));
        assert!(t.contains("x"));
        assert_eq!(t.remove("x"), Some(row("x", 3)));
        assert_eq!(t.remove("x"), None);
        assert_eq!(t.len(), 1);
        t.retain(|r| r.n != 5);
        assert!(t.is_empty());
    }

    #[test]
    fn table_serialises_as_the_vec_it_replaced() {
        let rows = vec![row("a", 1), row("b", 2)];
        let t: Table<Row> = rows.clone().into();
        let json = serde_json::to_string(&t).expect("serialise");
        assert_eq!(json, serde_json::to_string(&rows).expect("serialise"));
        let back: Table<Row> = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, t);
        assert_eq!(t.filtered(|r| r.n > 1), vec![row("b", 2)]);
    }

    #[test]
    fn page_forward_after_marker() {
        let p = page(
            letters(),
            Clone::clone,
            Some("b"),
            Some(2),
            Direction::Forward,
        )
        .expect("marker exists");
        assert_eq!(ids(&p), ["c", "d"]);
        assert!(p.full && p.more);
        let p = page(
            letters(),
            Clone::clone,
            Some("c"),
            Some(2),
            Direction::Forward,
        )
        .expect("marker exists");
        assert_eq!(ids(&p), ["d", "e"]);
        assert!(p.full && !p.more, "exactly full: full, nothing follows");
        let p = page(letters(), Clone::clone, None, None, Direction::Forward).expect("no marker");
        assert_eq!(p.items.len(), 5);
        assert!(!p.full && !p.more);
    }

    #[test]
    fn page_limit_zero_is_never_full() {
        let p = page(letters(), Clone::clone, None, Some(0), Direction::Forward).expect("ok");
        assert!(p.items.is_empty());
        assert!(!p.full && p.more);
    }

    #[test]
    fn page_backward_keeps_the_objects_nearest_the_marker() {
        let p = page(
            letters(),
            Clone::clone,
            Some("e"),
            Some(2),
            Direction::Backward,
        )
        .expect("marker exists");
        assert_eq!(ids(&p), ["c", "d"]);
        assert!(p.more);
        let p = page(
            letters(),
            Clone::clone,
            Some("b"),
            None,
            Direction::Backward,
        )
        .expect("marker exists");
        assert_eq!(ids(&p), ["a"]);
    }

    #[test]
    fn page_unknown_marker_is_an_error() {
        let e = page(
            letters(),
            Clone::clone,
            Some("z"),
            Some(2),
            Direction::Forward,
        );
        assert_eq!(e, Err(MarkerNotFound("z".into())));
    }
}
