//! Placeholder: the proxmox simulator is being written.

use std::sync::Arc;

use crate::{DcContext, MutateRequest, Service};

struct Placeholder;

impl Service for Placeholder {
    fn name(&self) -> &'static str {
        "proxmox"
    }
    fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new().route("/", axum::routing::get(|| async { "placeholder" }))
    }
    fn save(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn mutate(&self, _req: &MutateRequest) -> Result<serde_json::Value, String> {
        Err("not implemented".into())
    }
    fn summary(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// Build this DC's proxmox service (from saved state when given).
pub fn build(_ctx: Arc<DcContext>, _saved: Option<serde_json::Value>) -> anyhow::Result<Arc<dyn Service>> {
    Ok(Arc::new(Placeholder))
}
