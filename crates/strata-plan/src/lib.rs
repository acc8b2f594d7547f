//! Desired state, observed state and the plan between them.
//!
//! This crate owns the provider-neutral resource model ([`model`]), the desired state
//! derived from a compiled fleet ([`desired()`]), the diff that turns desired and
//! observed state into a plan of steps ([`diff()`]), the plan's human rendering
//! ([`display`]) and the saved-plan file that `apply PLAN` carries out ([`saved`]).
//!
//! Architecture invariant: pure. No I/O, no clock; providers (`strata-providers`) do
//! the observing and acting, the executor (`strata-apply`) the ordering and journaling.
//! Secrets are never fields: desired state carries only secret *references* in
//! `spec` (resolved by providers at apply time), so a plan can be printed or stored.

pub mod desired;
pub mod diff;
pub mod display;
pub mod drift;
pub mod fields;
pub mod hardware;
pub mod model;
pub mod saved;

pub use desired::{ACCESS_AS_SHARED, MEMBER_ROLE, desired};
pub use diff::{
    Action, Change, Conflict, Counts, Plan, Reboot, Step, diff, diff_resuming,
    vm_fields_needing_reboot,
};
pub use drift::{Drift, DriftedField, drift};
pub use fields::{
    AddressRange, DnsDomainFields, DnsRecordFields, FabricFields, FieldsError, FlavorAccessFields,
    FlavorFields, HaRuleFields, HaRuleSpec, KindFields, KindSpec, MaasSubnetFields, MaasSubnetSpec,
    MaasTagFields, MachineBond, MachineBridge, MachineFields, MachineLink, MachineNetwork,
    MachineRaid, MachineSpec, MachineStorage, NetworkFields, NetworkRbacFields, NodeDnsFields,
    ProjectFields, ProjectLimitFields, QuotaFields, RegisteredLimitFields, RoleAssignmentFields,
    SubnetFields, VlanFields, VlanSpec, VmFields, VmSpec,
};
pub use model::{
    Kind, Observed, Platform, Resource, ResourceId, ResourceIdError, ResourceSet, UnownedObject,
    owner_tag,
};
pub use saved::{SavedPlan, SavedPlanError, Staleness};
