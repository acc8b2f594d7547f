//! Kernel-option tags (`/tags/`): the tags strata makes so that MAAS boots the
//! machines carrying them with extra kernel options (a GPU host's IOMMU and 1 GiB
//! pages). MAAS boots a deployed machine with the `kernel_opts` of its first tag, by
//! name, that has any (canonical/maas `src/maasserver/models/node.py`,
//! `Node.get_effective_kernel_options`); the machine step adds the tag to the machine.
//!
//! A tag is strata's when its comment carries the fleet's mark
//! (`strata_plan::desired::kernel_tag_comment`); a `kernel-*` tag without it is
//! listed as unowned and never changed. Role tags (`role-*`) are not resources: they
//! belong to the machine step.

use serde::Deserialize;
use serde_json::Value;
use strata_plan::{
    Action, Kind, MaasTagFields, Observed, Platform, Resource, ResourceId, Step, UnownedObject,
};

use super::client::{Client, form, pct};
use super::{MaasProvider, desired_fields};
use crate::{Outcome, ProviderError};

/// The prefix of the tags this module manages.
pub(super) const PREFIX: &str = "kernel-";

#[derive(Clone, Debug, Deserialize)]
pub(super) struct Tag {
    pub name: String,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub kernel_opts: Option<String>,
}

impl Tag {
    fn comment(&self) -> &str {
        self.comment.as_deref().unwrap_or("")
    }

    fn owned_by(&self, owner: &str) -> bool {
        self.comment().ends_with(&mark(owner))
    }

    fn fields(&self) -> MaasTagFields {
        MaasTagFields {
            comment: self.comment().to_string(),
            kernel_opts: self.kernel_opts.clone().unwrap_or_default(),
        }
    }
}

/// The ownership mark at the end of a kernel tag's comment.
fn mark(owner: &str) -> String {
    format!("(managed by strata: {owner})")
}

/// The one list call.
pub(super) async fn list(c: &Client) -> Result<Vec<Tag>, super::client::CallError> {
    c.get::<Vec<Tag>>("tags/", &[]).await
}

/// strata's kernel tags as resources; other `kernel-*` tags as unowned objects.
pub(super) fn observe(dc: &str, owner: &str, tags: &[Tag], out: &mut Observed) {
    for t in tags.iter().filter(|t| t.name.starts_with(PREFIX)) {
        if t.owned_by(owner) {
            let mut r = Resource::with_fields(
                ResourceId::new(dc, Kind::MaasTag, t.name.clone()),
                &t.fields(),
            );
            r.external_id = Some(t.name.clone());
            out.resources.insert(r);
        } else {
            out.unowned.push(UnownedObject {
                dc: dc.to_string(),
                platform: Platform::Maas,
                kind: "tag".to_string(),
                name: t.name.clone(),
                external_id: t.name.clone(),
            });
        }
    }
}

fn outcome(name: &str, note: &str) -> Outcome {
    Outcome {
        external_id: Some(name.to_string()),
        note: note.to_string(),
    }
}

async fn read(c: &Client, name: &str) -> Result<Option<Tag>, ProviderError> {
    match c.get::<Tag>(&format!("tags/{}/", pct(name)), &[]).await {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_status(reqwest::StatusCode::NOT_FOUND) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn not_ours(step: &Step, t: &Tag) -> ProviderError {
    ProviderError::Refused(format!(
        "{}: MAAS tag {} exists without this fleet's mark in its comment ({:?}); strata never changes another owner's tag: rename or remove it",
        step.id,
        t.name,
        t.comment()
    ))
}

/// Create, update or delete one kernel tag. Every write re-reads the tag first, so a
/// repeated step (after a crash or an ambiguous failure) finds what the first made.
pub(super) async fn act(p: &MaasProvider, step: &Step) -> Result<Outcome, ProviderError> {
    let c = &p.client;
    let name = step.id.name.as_str();
    let path = format!("tags/{}/", pct(name));
    let current = read(c, name).await?;
    if let Some(t) = &current
        && !t.owned_by(&p.owner_tag)
    {
        return Err(not_ours(step, t));
    }
    if step.action == Action::Delete {
        return Ok(match current {
            Some(_) => {
                c.delete(&path).await?;
                outcome(name, "deleted")
            }
            None => Outcome {
                external_id: None,
                note: "already gone".to_string(),
            },
        });
    }
    let want: MaasTagFields = desired_fields(step)?;
    if !want.comment.ends_with(&mark(&p.owner_tag)) {
        return Err(ProviderError::Refused(format!(
            "{}: the desired comment does not carry this fleet's mark",
            step.id
        )));
    }
    let body = form([
        ("comment", want.comment.as_str()),
        ("kernel_opts", want.kernel_opts.as_str()),
    ]);
    match current {
        Some(t) if t.fields() == want => Ok(outcome(name, "already as desired")),
        Some(_) => {
            let _: Value = c.put(&path, &body).await?;
            Ok(outcome(name, "updated"))
        }
        None => {
            let mut create = body.clone();
            create.push(("name".to_string(), name.to_string()));
            match c.post::<Value>("tags/", None, &create, false).await {
                Ok(_) => Ok(outcome(name, "created")),
                // Made meanwhile (or by this very request): look again.
                Err(e) if e.ambiguous() || e.is_status(reqwest::StatusCode::BAD_REQUEST) => {
                    match read(c, name).await? {
                        Some(t) if !t.owned_by(&p.owner_tag) => Err(not_ours(step, &t)),
                        Some(t) if t.fields() == want => Ok(outcome(name, "created")),
                        Some(_) => {
                            let _: Value = c.put(&path, &body).await?;
                            Ok(outcome(name, "created"))
                        }
                        None => Err(e.into()),
                    }
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}
