//! Renderer placeholder: to be replaced by the cloud_init renderer.

use strata_fleet::Fleet;

use crate::RenderedFile;

pub fn render(_fleet: &Fleet) -> Vec<RenderedFile> {
    Vec::new()
}
