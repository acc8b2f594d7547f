//! Test support: what `strata lab up` plans from. The example fleets themselves come
//! from `strata_testkit`.

use strata_fleet::Fleet;
use strata_render::RenderedFile;

/// What `strata lab up` plans from: the FRR and keepalived files (or, as there, why
/// they cannot be rendered).
pub fn rendered(fleet: &Fleet) -> Result<Vec<RenderedFile>, strata_render::RenderError> {
    let mut files = strata_render::frr::render(fleet)?;
    files.extend(strata_render::keepalived::render(fleet)?);
    Ok(files)
}
