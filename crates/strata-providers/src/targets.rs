//! The targets file: where each DC's MAAS, Proxmox and OpenStack endpoints are, and
//! how to authenticate. The same format `strata twin --write-endpoints` writes:
//!
//! ```json
//! {"dcs": [{"name": "fra1",
//!   "maas": {"url": "http://.../MAAS/", "api_key": "ck:tk:secret"},
//!   "proxmox": {"url": "https://...:8006", "token_id": "user@realm!name", "token_secret": "...", "ca_file": "twin-ca.pem"},
//!   "openstack": {"auth_url": "http://.../v3", "region": "fra1", "username": "admin", "password": "...",
//!                 "project": "admin", "user_domain": "Default", "project_domain": "Default"}}]}
//! ```
//!
//! Any secret (`api_key`, `token_secret`, `password`) may instead be a reference,
//! `{"env": "VARIABLE"}` or `{"file": "PATH"}`, resolved through the
//! [`SecretResolver`] when the file is loaded (so `plan` fails on a missing one).
//! `file` and `ca_file` paths are relative to the targets file; `"insecure": true`
//! accepts any certificate (labs only).
//!
//! `"upgrade_command"` (Proxmox, optional) is how the server's rolling upgrade
//! upgrades a node's packages: PVE has no API call for `apt dist-upgrade`, so strata
//! runs this shell command with `STRATA_DC`, `STRATA_NODE` and `STRATA_VERSION` (empty:
//! the newest the node's package index offers) in its environment, e.g.
//! `ssh root@$STRATA_NODE 'apt-get update && apt-get -y dist-upgrade'`.
//!
//! `"poll_interval_ms"` and `"max_poll_interval_ms"` (MAAS, optional) set how often
//! strata reads a machine in transition: first after `poll_interval_ms` (default
//! 2000), the interval doubling up to `max_poll_interval_ms` (default 10000). A
//! twin run with `--time-scale N` needs them divided by N too, so that polling
//! stays as fine, relative to the phases, as against a real MAAS.
//!
//! `"user"` and `"password"` (Proxmox, optional): `root@pam` and its password, used
//! only for what PVE allows no API token (removing a node from the cluster during a
//! decommission).
//!
//! `"interface"` (OpenStack, optional) picks which of the catalog's endpoints strata
//! talks to: `internal` (the default), `public` or `admin`. A Kolla-Ansible
//! deployment registers every service's `internal` endpoint on the internal VIP
//! (`kolla_internal_fqdn`) and its `public` one on the external VIP; the
//! `admin-openrc.sh` Kolla writes for the operator sets `OS_INTERFACE=internal`
//! (openstack/kolla-ansible `ansible/roles/common/templates/admin-openrc.sh.j2`;
//! `public-openrc.sh.j2` beside it is for users outside), so a
//! deploy host on the management network uses the internal endpoints, and a
//! controller outside it names `"interface": "public"`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ProviderError;
pub use crate::secrets::Secret;
use crate::secrets::{SecretRef, SecretResolver};

#[derive(Deserialize)]
#[serde(untagged)]
enum SecretSource {
    Literal(String),
    Env { env: String },
    File { file: String },
}

#[derive(Deserialize)]
struct RawTargets {
    dcs: Vec<RawDc>,
}

#[derive(Deserialize)]
struct RawDc {
    name: String,
    #[serde(default)]
    maas: Option<RawMaas>,
    #[serde(default)]
    proxmox: Option<RawProxmox>,
    #[serde(default)]
    openstack: Option<RawOpenstack>,
}

#[derive(Deserialize)]
struct RawMaas {
    url: String,
    api_key: SecretSource,
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    poll_interval_ms: Option<u64>,
    #[serde(default)]
    max_poll_interval_ms: Option<u64>,
}

#[derive(Deserialize)]
struct RawProxmox {
    url: String,
    token_id: String,
    token_secret: SecretSource,
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(default)]
    upgrade_command: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<SecretSource>,
}

#[derive(Deserialize)]
struct RawOpenstack {
    auth_url: String,
    region: String,
    username: String,
    password: SecretSource,
    project: String,
    #[serde(default = "default_domain")]
    user_domain: String,
    #[serde(default = "default_domain")]
    project_domain: String,
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    interface: Interface,
}

/// Which endpoint of each catalog service strata uses (Keystone's `interface`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interface {
    Public,
    /// What Kolla's `admin-openrc.sh` selects (`OS_INTERFACE=internal`).
    #[default]
    Internal,
    Admin,
}

impl Interface {
    /// The catalog's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::Public => "public",
            Interface::Internal => "internal",
            Interface::Admin => "admin",
        }
    }
}

fn default_domain() -> String {
    "Default".into()
}

/// TLS settings of one endpoint.
#[derive(Clone, Debug, Default)]
pub struct Tls {
    pub ca_pem: Option<String>,
    pub insecure: bool,
}

#[derive(Clone, Debug)]
pub struct MaasTarget {
    /// Base URL ending in `/MAAS/`.
    pub url: String,
    /// `consumer_key:token_key:token_secret`.
    pub api_key: Secret,
    pub tls: Tls,
    /// First interval between reads of a machine in transition, and the most it
    /// grows to (`None`: the provider's defaults).
    pub poll_interval: Option<std::time::Duration>,
    pub max_poll_interval: Option<std::time::Duration>,
}

#[derive(Clone, Debug)]
pub struct ProxmoxTarget {
    /// `https://host:8006`
    pub url: String,
    /// `user@realm!tokenid`
    pub token_id: String,
    pub token_secret: Secret,
    pub tls: Tls,
    pub concurrency: Option<usize>,
    /// How a node's packages are upgraded (a shell command run by strata with
    /// `STRATA_DC`, `STRATA_NODE` and `STRATA_VERSION` set; PVE has no API call for it).
    pub upgrade_command: Option<String>,
    /// `root@pam` and its password: only for what PVE lets no token do (removing a
    /// node from the cluster, `DELETE /cluster/config/nodes/{node}`).
    pub root: Option<(String, Secret)>,
}

#[derive(Clone, Debug)]
pub struct OpenstackTarget {
    /// Keystone v3 URL.
    pub auth_url: String,
    pub region: String,
    pub username: String,
    pub password: Secret,
    pub project: String,
    pub user_domain: String,
    pub project_domain: String,
    pub tls: Tls,
    /// The catalog endpoints strata uses (default `internal`).
    pub interface: Interface,
}

#[derive(Clone, Debug)]
pub struct DcTargets {
    pub name: String,
    pub maas: Option<MaasTarget>,
    pub proxmox: Option<ProxmoxTarget>,
    pub openstack: Option<OpenstackTarget>,
}

#[derive(Clone, Debug)]
pub struct Targets {
    pub dcs: Vec<DcTargets>,
}

impl Targets {
    /// Read a targets file and resolve its secrets through `secrets`.
    pub fn load(path: &Path, secrets: &dyn SecretResolver) -> Result<Targets, ProviderError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ProviderError::Refused(format!("cannot read targets file {}: {e}", path.display()))
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // Absolute, so that `file` references mean the same to any resolver.
        let base = std::path::absolute(&dir).unwrap_or(dir);
        Targets::parse(&text, &base, secrets)
    }

    /// Parse a targets document; `file` and `ca_file` paths are relative to `base`.
    pub fn parse(
        text: &str,
        base: &Path,
        secrets: &dyn SecretResolver,
    ) -> Result<Targets, ProviderError> {
        let raw: RawTargets = serde_json::from_str(text)
            .map_err(|e| ProviderError::Refused(format!("targets file is not valid: {e}")))?;
        let secret = |s: &SecretSource, what: &str| -> Result<Secret, ProviderError> {
            let reference = match s {
                SecretSource::Literal(v) => return Ok(Secret::new(v.clone())),
                SecretSource::Env { env } => SecretRef::Env(env.clone()),
                SecretSource::File { file } => SecretRef::File(resolve(base, file)),
            };
            secrets
                .resolve(&reference)
                .map_err(|e| ProviderError::Secret(format!("{what} ({reference}): {e}")))
        };
        let tls = |ca: &Option<String>, insecure: bool| -> Result<Tls, ProviderError> {
            let ca_pem = match ca {
                Some(f) => {
                    let p = resolve(base, f);
                    Some(std::fs::read_to_string(&p).map_err(|e| {
                        ProviderError::Refused(format!("cannot read CA file {}: {e}", p.display()))
                    })?)
                }
                None => None,
            };
            Ok(Tls { ca_pem, insecure })
        };
        let mut dcs = Vec::new();
        for d in raw.dcs {
            let maas = match d.maas {
                Some(m) => Some(MaasTarget {
                    api_key: secret(&m.api_key, &format!("{} MAAS api_key", d.name))?,
                    tls: tls(&m.ca_file, m.insecure)?,
                    url: m.url,
                    poll_interval: m.poll_interval_ms.map(std::time::Duration::from_millis),
                    max_poll_interval: m.max_poll_interval_ms.map(std::time::Duration::from_millis),
                }),
                None => None,
            };
            let proxmox = match d.proxmox {
                Some(p) => Some(ProxmoxTarget {
                    token_secret: secret(
                        &p.token_secret,
                        &format!("{} Proxmox token_secret", d.name),
                    )?,
                    tls: tls(&p.ca_file, p.insecure)?,
                    url: p.url,
                    token_id: p.token_id,
                    concurrency: p.concurrency,
                    upgrade_command: p.upgrade_command.filter(|c| !c.trim().is_empty()),
                    root: match (p.user, &p.password) {
                        (Some(u), Some(pw)) => {
                            Some((u, secret(pw, &format!("{} Proxmox password", d.name))?))
                        }
                        _ => None,
                    },
                }),
                None => None,
            };
            let openstack = match d.openstack {
                Some(o) => Some(OpenstackTarget {
                    password: secret(&o.password, &format!("{} OpenStack password", d.name))?,
                    tls: tls(&o.ca_file, o.insecure)?,
                    auth_url: o.auth_url,
                    region: o.region,
                    username: o.username,
                    project: o.project,
                    user_domain: o.user_domain,
                    project_domain: o.project_domain,
                    interface: o.interface,
                }),
                None => None,
            };
            dcs.push(DcTargets {
                name: d.name,
                maas,
                proxmox,
                openstack,
            });
        }
        Ok(Targets { dcs })
    }
}

fn resolve(base: &Path, file: &str) -> PathBuf {
    let p = PathBuf::from(file);
    if p.is_absolute() { p } else { base.join(p) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::StaticSecrets;

    #[test]
    fn maas_poll_intervals_are_optional() {
        let text = r#"{"dcs":[{"name":"fra1","maas":{"url":"http://x/MAAS/","api_key":"a:b:c",
            "poll_interval_ms":20,"max_poll_interval_ms":100}},
            {"name":"ams1","maas":{"url":"http://y/MAAS/","api_key":"a:b:c"}}]}"#;
        let t = Targets::parse(text, Path::new("."), &StaticSecrets::new()).expect("parse");
        let m = t.dcs[0].maas.as_ref().expect("maas");
        assert_eq!(m.poll_interval, Some(std::time::Duration::from_millis(20)));
        assert_eq!(
            m.max_poll_interval,
            Some(std::time::Duration::from_millis(100))
        );
        let m = t.dcs[1].maas.as_ref().expect("maas");
        assert_eq!((m.poll_interval, m.max_poll_interval), (None, None));
    }

    #[test]
    fn secrets_come_from_literals_or_env_and_never_print() {
        let text = r#"{"dcs":[{"name":"fra1",
            "maas":{"url":"http://x/MAAS/","api_key":{"env":"MAAS_KEY"}},
            "openstack":{"auth_url":"http://x/v3","region":"fra1","username":"u","password":"p4ss","project":"admin"}}]}"#;
        let env = StaticSecrets::new().with(SecretRef::Env("MAAS_KEY".into()), "a:b:c");
        let t = Targets::parse(text, Path::new("."), &env).expect("parse");
        let m = t.dcs[0].maas.as_ref().expect("maas");
        assert_eq!(m.api_key.expose(), "a:b:c");
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("a:b:c") && !dbg.contains("p4ss"), "{dbg}");
        let missing =
            Targets::parse(text, Path::new("."), &StaticSecrets::new()).expect_err("missing env");
        assert!(missing.to_string().contains("MAAS_KEY"));
    }

    #[test]
    fn the_openstack_interface_defaults_to_internal_and_can_be_public() {
        let doc = |extra: &str| {
            format!(
                r#"{{"dcs":[{{"name":"fra1","openstack":{{"auth_url":"http://x/v3","region":"fra1",
                "username":"u","password":"p","project":"admin"{extra}}}}}]}}"#
            )
        };
        let parse = |extra: &str| {
            Targets::parse(&doc(extra), Path::new("."), &StaticSecrets::new())
                .map(|t| t.dcs[0].openstack.as_ref().expect("openstack").interface)
        };
        assert_eq!(parse("").expect("default"), Interface::Internal);
        assert_eq!(
            parse(r#","interface":"public""#).expect("public"),
            Interface::Public
        );
        let bad = parse(r#","interface":"internalURL""#).expect_err("unknown interface");
        assert!(bad.to_string().contains("internalURL"), "{bad}");
    }
}
