//! Renderer placeholder: to be replaced by the prometheus renderer.

use strata_fleet::Fleet;

use crate::RenderedFile;

pub fn render(_fleet: &Fleet) -> Vec<RenderedFile> {
    Vec::new()
}
