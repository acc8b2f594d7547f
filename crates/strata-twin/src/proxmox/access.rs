//! Users, API tokens, roles and ACLs, and the permission checks made with them, as
//! `pve-access-control` makes them:
//!
//! - privileges and the built-in roles: `src/PVE/AccessControl.pm` (`$privgroups`,
//!   `create_roles`: `PVE<Cat>Admin`, `PVE<Cat>User`, `PVEAuditor`, `PVEAdmin`,
//!   `Administrator`, `NoAccess`);
//! - roles on a path: `AccessControl.pm` `roles`: walking from `/` down to the path,
//!   an ACL entry for the user (or, first, the token) applies on the path itself, and on
//!   an ancestor only when it propagates; a deeper entry replaces what was inherited;
//!   a guest in a pool also gets the roles on `/pool/<pool>` (`RPCEnvironment.pm`
//!   `compile_acl_path`), unless `NoAccess` is set on it directly;
//! - tokens: `RPCEnvironment.pm` `permissions`: a token without privilege separation
//!   has its user's privileges; a privilege-separated token (`privsep=1`, the default)
//!   has those its own ACLs give, and only where its user has them too;
//! - `root@pam` may do everything;
//! - a missing privilege is a 403 "Permission check failed (<path>, <privilege>)"
//!   (`RPCEnvironment.pm` `check`, `raise_perm_exc`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ApiError;

/// The privileges by category and level (`$privgroups`): `(category, root, admin,
/// user, audit)`.
type PrivGroup = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

const PRIV_GROUPS: &[PrivGroup] = &[
    (
        "VM",
        &[],
        &[
            "VM.Config.Disk",
            "VM.Config.CPU",
            "VM.Config.Memory",
            "VM.Config.Network",
            "VM.Config.HWType",
            "VM.Config.Options",
            "VM.Allocate",
            "VM.Clone",
            "VM.GuestAgent.Unrestricted",
            "VM.Migrate",
            "VM.Replicate",
            "VM.Snapshot",
            "VM.Snapshot.Rollback",
        ],
        &[
            "VM.Config.CDROM",
            "VM.Config.Cloudinit",
            "VM.Console",
            "VM.Backup",
            "VM.GuestAgent.FileRead",
            "VM.GuestAgent.FileSystemMgmt",
            "VM.GuestAgent.FileWrite",
            "VM.PowerMgmt",
        ],
        &["VM.Audit", "VM.GuestAgent.Audit"],
    ),
    (
        "Sys",
        &[
            "Sys.PowerMgmt",
            "Sys.Modify",
            "Sys.Incoming",
            "Sys.AccessNetwork",
        ],
        &["Sys.Console", "Sys.Syslog"],
        &[],
        &["Sys.Audit"],
    ),
    (
        "Datastore",
        &[],
        &["Datastore.Allocate", "Datastore.AllocateTemplate"],
        &["Datastore.AllocateSpace"],
        &["Datastore.Audit"],
    ),
    (
        "SDN",
        &[],
        &["SDN.Allocate", "SDN.Audit"],
        &["SDN.Use"],
        &["SDN.Audit"],
    ),
    (
        "User",
        &["Realm.Allocate"],
        &["User.Modify", "Group.Allocate", "Realm.AllocateUser"],
        &[],
        &[],
    ),
    (
        "Pool",
        &[],
        &["Pool.Allocate"],
        &["Pool.Audit"],
        &["Pool.Audit"],
    ),
    (
        "Mapping",
        &[],
        &["Mapping.Modify"],
        &["Mapping.Use"],
        &["Mapping.Audit"],
    ),
];

/// Every valid privilege name.
pub fn all_privileges() -> BTreeSet<String> {
    let mut out: BTreeSet<String> = BTreeSet::from(["Permissions.Modify".to_string()]);
    for (_, root, admin, user, audit) in PRIV_GROUPS {
        for p in root.iter().chain(*admin).chain(*user).chain(*audit) {
            out.insert(p.to_string());
        }
    }
    out
}

/// The built-in roles and their privileges.
pub fn builtin_roles() -> BTreeMap<String, BTreeSet<String>> {
    let mut roles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    roles.insert("NoAccess".into(), BTreeSet::new());
    roles.insert("Administrator".into(), all_privileges());
    for (cat, _, admin, user, audit) in PRIV_GROUPS {
        for p in admin.iter().chain(*user).chain(*audit) {
            roles
                .entry(format!("PVE{cat}Admin"))
                .or_default()
                .insert(p.to_string());
            roles
                .entry("PVEAdmin".into())
                .or_default()
                .insert(p.to_string());
        }
        if !user.is_empty() {
            for p in user.iter().chain(*audit) {
                roles
                    .entry(format!("PVE{cat}User"))
                    .or_default()
                    .insert(p.to_string());
            }
        }
        for p in *audit {
            roles
                .entry("PVEAuditor".into())
                .or_default()
                .insert(p.to_string());
        }
    }
    // Only Administrator (and PVEMappingAdmin) may modify mappings.
    if let Some(r) = roles.get_mut("PVEAdmin") {
        r.remove("Mapping.Modify");
    }
    roles
}

/// An API token of a user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub secret: String,
    /// Privilege separation: the token's own ACLs, within its user's privileges.
    pub privsep: bool,
    #[serde(default)]
    pub comment: Option<String>,
}

/// A user and its tokens (by token id, the part after `!`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    #[serde(default)]
    pub tokens: BTreeMap<String, Token>,
}

/// Whom an ACL entry is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ugid {
    User,
    Token,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclEntry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: Ugid,
    pub ugid: String,
    pub roleid: String,
    pub propagate: bool,
}

/// `user.cfg`: users with their tokens, custom roles, ACL.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Access {
    #[serde(default)]
    pub users: BTreeMap<String, User>,
    /// Roles created through `/access/roles` (the built-in ones are not stored).
    #[serde(default)]
    pub roles: BTreeMap<String, BTreeSet<String>>,
    #[serde(default)]
    pub acl: BTreeSet<AclEntry>,
}

/// `user@realm!token` → (`user@realm`, `token`).
pub fn split_tokenid(id: &str) -> Option<(&str, &str)> {
    id.split_once('!')
}

impl Access {
    /// The privileges of a role (built-in or custom).
    pub fn role(&self, id: &str) -> Option<BTreeSet<String>> {
        builtin_roles()
            .remove(id)
            .or_else(|| self.roles.get(id).cloned())
    }

    /// The token `user@realm!id` with `secret`, when it exists.
    pub fn token_matches(&self, tokenid: &str, secret: &str) -> bool {
        let Some((user, id)) = split_tokenid(tokenid) else {
            return false;
        };
        self.users
            .get(user)
            .and_then(|u| u.tokens.get(id))
            .is_some_and(|t| t.secret == secret)
    }

    /// The roles an ACL subject has on `path`, with inheritance (`roles`).
    fn roles_on(&self, kind: Ugid, ugid: &str, path: &str) -> BTreeSet<String> {
        let mut roles: BTreeSet<String> = BTreeSet::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        // "/" then each deeper prefix.
        let mut prefixes = vec!["/".to_string()];
        for i in 0..parts.len() {
            prefixes.push(format!("/{}", parts[..=i].join("/")));
        }
        let last = prefixes.len() - 1;
        for (i, prefix) in prefixes.iter().enumerate() {
            let here: BTreeSet<String> = self
                .acl
                .iter()
                .filter(|e| e.kind == kind && e.ugid == ugid && e.path == *prefix)
                .filter(|e| i == last || e.propagate)
                .map(|e| e.roleid.clone())
                .collect();
            if !here.is_empty() {
                roles = here;
            }
        }
        roles
    }

    /// The privileges of one ACL subject on `path` (roles on the path, plus a guest's
    /// pool roles).
    fn subject_privs(
        &self,
        kind: Ugid,
        ugid: &str,
        path: &str,
        pool: Option<&str>,
    ) -> BTreeSet<String> {
        let mut roles = self.roles_on(kind, ugid, path);
        if let Some(pool) = pool
            && !roles.contains("NoAccess")
        {
            let pool_roles = self.roles_on(kind, ugid, &format!("/pool/{pool}"));
            if pool_roles.contains("NoAccess") {
                roles = BTreeSet::from(["NoAccess".to_string()]);
            } else {
                roles.extend(pool_roles);
            }
        }
        roles
            .iter()
            .filter_map(|r| self.role(r))
            .flatten()
            .collect()
    }

    /// What `who` (a user or a full token id) may do on `path`; `pool`: the pool of the
    /// guest a `/vms/<vmid>` path names.
    pub fn permissions(&self, who: &str, path: &str, pool: Option<&str>) -> BTreeSet<String> {
        if who == "root@pam" {
            return all_privileges();
        }
        if let Some((user, id)) = split_tokenid(who) {
            let Some(token) = self.users.get(user).and_then(|u| u.tokens.get(id)) else {
                return BTreeSet::new();
            };
            let of_user = self.subject_privs(Ugid::User, user, path, pool);
            if !token.privsep {
                return of_user;
            }
            let of_token = self.subject_privs(Ugid::Token, who, path, pool);
            return of_token.intersection(&of_user).cloned().collect();
        }
        if !self.users.contains_key(who) {
            return BTreeSet::new();
        }
        self.subject_privs(Ugid::User, who, path, pool)
    }

    /// All of `privs` on `path`, or the 403 PVE answers for the first one missing.
    pub fn check(
        &self,
        who: &str,
        path: &str,
        pool: Option<&str>,
        privs: &[&str],
    ) -> Result<(), ApiError> {
        let have = self.permissions(who, path, pool);
        for p in privs {
            if !have.contains(*p) {
                return Err(denied(path, p));
            }
        }
        Ok(())
    }

    /// Any of `privs` on `path`, or the 403 naming them all (`check_any`).
    pub fn check_any(
        &self,
        who: &str,
        path: &str,
        pool: Option<&str>,
        privs: &[&str],
    ) -> Result<(), ApiError> {
        let have = self.permissions(who, path, pool);
        if privs.iter().any(|p| have.contains(*p)) {
            return Ok(());
        }
        Err(denied(path, &privs.join("|")))
    }
}

/// PVE's 403 for a missing privilege.
pub fn denied(path: &str, what: &str) -> ApiError {
    ApiError::status(403, format!("Permission check failed ({path}, {what})"))
}

// ---- the `/access` API (pve-access-control `src/PVE/API2/ACL.pm`, `Role.pm`,
// `User.pm`) ----

use serde_json::{Value, json};

use super::api::ParamsExt;
use super::params::{Params, split_list};
use super::{ApiResult, Pve};

/// A role id: letters, digits, `-` and `_` (pve-access-control `pve-roleid`).
fn valid_roleid(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn parse_privs(list: Option<&str>) -> Result<BTreeSet<String>, ApiError> {
    let valid = all_privileges();
    let mut out = BTreeSet::new();
    for p in split_list(list.unwrap_or_default()) {
        if !valid.contains(p) {
            return Err(ApiError::param(
                "privs",
                format!("invalid privilege name '{p}'"),
            ));
        }
        out.insert(p.to_string());
    }
    Ok(out)
}

fn valid_userid(u: &str) -> bool {
    u.split_once('@')
        .is_some_and(|(n, r)| !n.is_empty() && !r.is_empty() && !n.contains(['/', ':', ' ']))
}

impl Pve {
    /// `GET /access/acl`: the entries on paths where the caller may modify permissions.
    pub(crate) fn acl_list(&self, auth: &super::auth::Auth) -> ApiResult {
        let st = self.st.lock();
        let list: Vec<Value> = st
            .access
            .acl
            .iter()
            .filter(|e| {
                st.access
                    .permissions(&auth.user, &e.path, None)
                    .contains("Permissions.Modify")
            })
            .map(|e| {
                json!({"path": e.path, "type": e.kind, "ugid": e.ugid, "roleid": e.roleid,
                       "propagate": u8::from(e.propagate)})
            })
            .collect();
        Ok(json!(list).into())
    }

    /// `PUT /access/acl`: add (or, with `delete`, remove) roles on a path for users and
    /// tokens.
    pub(crate) fn acl_put(&self, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        let path = p.s("path").unwrap_or("/").to_string();
        if !path.starts_with('/') {
            return Err(ApiError::msg(format!("invalid ACL path '{path}'")));
        }
        if p.s("groups").is_some() {
            return Err(ApiError::msg("groups are not simulated by the twin"));
        }
        let propagate = p.b("propagate").unwrap_or(true);
        let delete = p.flag("delete");
        let roles: Vec<String> = split_list(p.s("roles").unwrap_or_default())
            .map(String::from)
            .collect();
        for r in &roles {
            if st.access.role(r).is_none() {
                return Err(ApiError::msg(format!("role '{r}' does not exist")));
            }
        }
        let mut subjects = Vec::new();
        for u in split_list(p.s("users").unwrap_or_default()) {
            if !st.access.users.contains_key(u) {
                return Err(ApiError::msg(format!("user '{u}' does not exist")));
            }
            subjects.push((Ugid::User, u.to_string()));
        }
        for t in split_list(p.s("tokens").unwrap_or_default()) {
            let exists = split_tokenid(t)
                .and_then(|(u, id)| st.access.users.get(u).map(|u| u.tokens.contains_key(id)))
                .unwrap_or(false);
            if !exists {
                return Err(ApiError::msg(format!("no such token '{t}'")));
            }
            subjects.push((Ugid::Token, t.to_string()));
        }
        for (kind, ugid) in subjects {
            for roleid in &roles {
                // One entry per (path, subject, role): a new one replaces the old.
                st.access.acl.retain(|e| {
                    !(e.path == path && e.kind == kind && e.ugid == ugid && e.roleid == *roleid)
                });
                if !delete {
                    st.access.acl.insert(AclEntry {
                        path: path.clone(),
                        kind,
                        ugid: ugid.clone(),
                        roleid: roleid.clone(),
                        propagate,
                    });
                }
            }
        }
        Ok(Value::Null.into())
    }

    /// `GET /access/roles`: built-in roles (`special: 1`) and custom ones.
    pub(crate) fn role_list(&self) -> ApiResult {
        let st = self.st.lock();
        let mut list: Vec<Value> = builtin_roles()
            .into_iter()
            .map(|(id, privs)| {
                json!({"roleid": id, "privs": privs.into_iter().collect::<Vec<_>>().join(","), "special": 1})
            })
            .collect();
        for (id, privs) in &st.access.roles {
            list.push(
                json!({"roleid": id, "privs": privs.iter().cloned().collect::<Vec<_>>().join(",")}),
            );
        }
        Ok(json!(list).into())
    }

    pub(crate) fn role_get(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        let id = p.s("roleid").unwrap_or_default();
        let privs = st
            .access
            .role(id)
            .ok_or_else(|| ApiError::msg(format!("role '{id}' does not exist")))?;
        let map: serde_json::Map<String, Value> =
            privs.into_iter().map(|p| (p, json!(1))).collect();
        Ok(Value::Object(map).into())
    }

    pub(crate) fn role_create(&self, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        let id = p.s("roleid").unwrap_or_default().to_string();
        if !valid_roleid(&id) {
            return Err(ApiError::param(
                "roleid",
                format!("value '{id}' does not look like a valid role ID"),
            ));
        }
        if st.access.role(&id).is_some() {
            return Err(ApiError::msg(format!("role '{id}' already exists")));
        }
        let privs = parse_privs(p.s("privs"))?;
        st.access.roles.insert(id, privs);
        Ok(Value::Null.into())
    }

    pub(crate) fn role_put(&self, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        let id = p.s("roleid").unwrap_or_default().to_string();
        if builtin_roles().contains_key(&id) {
            return Err(ApiError::msg(format!("cannot modify built-in role '{id}'")));
        }
        let privs = parse_privs(p.s("privs"))?;
        let Some(have) = st.access.roles.get_mut(&id) else {
            return Err(ApiError::msg(format!("role '{id}' does not exist")));
        };
        if p.flag("append") {
            have.extend(privs);
        } else {
            *have = privs;
        }
        Ok(Value::Null.into())
    }

    pub(crate) fn role_delete(&self, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        let id = p.s("roleid").unwrap_or_default().to_string();
        if builtin_roles().contains_key(&id) {
            return Err(ApiError::msg(format!("cannot delete built-in role '{id}'")));
        }
        if st.access.roles.remove(&id).is_none() {
            return Err(ApiError::msg(format!("role '{id}' does not exist")));
        }
        st.access.acl.retain(|e| e.roleid != id);
        Ok(Value::Null.into())
    }

    /// `POST /access/users` (users of the `pve` realm; no password login for them here).
    pub(crate) fn user_create(&self, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        let id = p.s("userid").unwrap_or_default().to_string();
        if !valid_userid(&id) {
            return Err(ApiError::param(
                "userid",
                format!("value '{id}' does not look like a valid user name"),
            ));
        }
        if st.access.users.contains_key(&id) {
            return Err(ApiError::msg(format!(
                "create user failed: user '{id}' already exists"
            )));
        }
        st.access.users.insert(id, User::default());
        Ok(Value::Null.into())
    }

    /// `POST /access/users/{userid}/token/{tokenid}`: the token's secret is shown once.
    pub(crate) fn token_create(&self, p: &Params) -> ApiResult {
        let secret = super::model::uuid_from(self.rand(), self.rand());
        let mut st = self.st.lock();
        let user = p.s("userid").unwrap_or_default().to_string();
        let id = p.s("tokenid").unwrap_or_default().to_string();
        let valid = id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid {
            return Err(ApiError::param(
                "tokenid",
                format!("value '{id}' does not match the regex pattern"),
            ));
        }
        let Some(u) = st.access.users.get_mut(&user) else {
            return Err(ApiError::msg(format!("no such user ('{user}')")));
        };
        if u.tokens.contains_key(&id) {
            return Err(ApiError::msg("Token already exists."));
        }
        let privsep = p.b("privsep").unwrap_or(true);
        let comment = p.s("comment").map(String::from);
        u.tokens.insert(
            id.clone(),
            Token {
                secret: secret.clone(),
                privsep,
                comment: comment.clone(),
            },
        );
        let mut info = json!({"privsep": u8::from(privsep)});
        if let Some(c) = comment {
            info["comment"] = json!(c);
        }
        Ok(json!({"full-tokenid": format!("{user}!{id}"), "info": info, "value": secret}).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: Ugid, ugid: &str, role: &str, propagate: bool) -> AclEntry {
        AclEntry {
            path: path.into(),
            kind,
            ugid: ugid.into(),
            roleid: role.into(),
            propagate,
        }
    }

    fn access() -> Access {
        let mut a = Access::default();
        a.users.insert(
            "ops@pve".into(),
            User {
                tokens: BTreeMap::from([
                    (
                        "sep".to_string(),
                        Token {
                            secret: "s".into(),
                            privsep: true,
                            comment: None,
                        },
                    ),
                    (
                        "full".to_string(),
                        Token {
                            secret: "f".into(),
                            privsep: false,
                            comment: None,
                        },
                    ),
                ]),
            },
        );
        a.roles.insert(
            "Mini".into(),
            ["VM.Audit", "VM.Config.CPU"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        a
    }

    #[test]
    fn built_in_roles_are_pve_s() {
        let r = builtin_roles();
        assert!(r["PVEVMAdmin"].contains("VM.Config.CPU") && r["PVEVMAdmin"].contains("VM.Audit"));
        assert!(!r["PVEVMAdmin"].contains("Sys.Audit"));
        assert_eq!(
            r["PVEAuditor"]
                .iter()
                .filter(|p| p.starts_with("Sys."))
                .count(),
            1
        );
        assert!(r["PVEDatastoreUser"].contains("Datastore.AllocateSpace"));
        assert!(r["Administrator"].contains("Permissions.Modify"));
        assert!(r["NoAccess"].is_empty());
    }

    #[test]
    fn acls_inherit_when_they_propagate_and_deeper_entries_replace() {
        let mut a = access();
        a.acl
            .insert(entry("/vms", Ugid::User, "ops@pve", "PVEVMAdmin", true));
        a.acl
            .insert(entry("/", Ugid::User, "ops@pve", "PVEAuditor", false));
        a.acl
            .insert(entry("/vms/100", Ugid::User, "ops@pve", "NoAccess", false));
        assert!(
            a.permissions("ops@pve", "/vms/101", None)
                .contains("VM.Config.CPU")
        );
        assert!(a.permissions("ops@pve", "/vms/100", None).is_empty());
        // `/` does not propagate: nothing on /nodes/pve1.
        assert!(a.permissions("ops@pve", "/", None).contains("Sys.Audit"));
        assert!(a.permissions("ops@pve", "/nodes/pve1", None).is_empty());
        // A pool's roles reach its guests.
        a.acl
            .insert(entry("/pool/p", Ugid::User, "ops@pve", "PVEAuditor", true));
        assert!(a.permissions("ops@pve", "/vms/100", Some("p")).is_empty());
        assert!(
            a.permissions("ops@pve", "/vms/7", Some("p"))
                .contains("Sys.Audit")
        );
        assert!(a.permissions("nobody@pve", "/vms/7", None).is_empty());
        assert!(
            a.permissions("root@pam", "/anything", None)
                .contains("Sys.Modify")
        );
    }

    #[test]
    fn separated_tokens_get_their_own_acls_within_their_users() {
        let mut a = access();
        a.acl
            .insert(entry("/", Ugid::User, "ops@pve", "PVEVMAdmin", true));
        // Without its own ACL a separated token may do nothing; the other one all its
        // user may.
        assert!(a.permissions("ops@pve!sep", "/vms/1", None).is_empty());
        assert!(
            a.permissions("ops@pve!full", "/vms/1", None)
                .contains("VM.Allocate")
        );
        a.acl
            .insert(entry("/", Ugid::Token, "ops@pve!sep", "Mini", true));
        a.acl
            .insert(entry("/", Ugid::Token, "ops@pve!sep", "PVEAuditor", true));
        let p = a.permissions("ops@pve!sep", "/vms/1", None);
        // Sys.Audit is the token's, not its user's: filtered out.
        assert_eq!(
            p.into_iter().collect::<Vec<_>>(),
            ["VM.Audit", "VM.Config.CPU", "VM.GuestAgent.Audit"]
        );
        let e = a
            .check("ops@pve!sep", "/vms/1", None, &["VM.Config.Memory"])
            .expect_err("no memory privilege");
        assert_eq!(e.status.as_u16(), 403);
        assert_eq!(
            e.message,
            "Permission check failed (/vms/1, VM.Config.Memory)"
        );
        assert!(a.token_matches("ops@pve!sep", "s") && !a.token_matches("ops@pve!sep", "x"));
    }
}
