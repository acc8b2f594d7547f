//! Observation: list calls only (projects, flavors with their extra specs, networks,
//! subnets, following pagination links) plus one quota read per owned project, and the
//! mapping of API objects onto the field vocabulary ([`ProjectFields`],
//! [`FlavorFields`], ...). Ownership: projects and networks by tag, flavors by the
//! [`OWNER_SPEC`] extra spec, subnets by their network; everything else is listed as
//! unowned.

use std::collections::HashMap;

use strata_plan::{
    FlavorFields, Kind, KindFields, NetworkFields, Observed, ProjectFields, QuotaFields, Resource,
    ResourceId, SubnetFields,
};

use super::client::{Service, query, seg};
use super::{COMPUTE_MICROVERSION, OWNER_SPEC, OpenstackProvider, api, sorted};
use crate::ProviderError;

impl OpenstackProvider {
    pub(super) async fn list_projects(&self) -> Result<Vec<api::Project>, ProviderError> {
        // Keystone pages only when asked (`limit`, or its `list_limit` setting).
        let page = self.client.page_size.to_string();
        let path = format!("/projects?{}", query(&[("limit", &page)]));
        self.client.list(Service::Identity, &path, "projects").await
    }

    pub(super) async fn list_flavors(&self) -> Result<Vec<api::Flavor>, ProviderError> {
        let page = self.client.page_size.to_string();
        let path = format!(
            "/flavors/detail?{}",
            query(&[("is_public", "None"), ("limit", &page)])
        );
        let flavors: Vec<api::Flavor> =
            self.client.list(Service::Compute, &path, "flavors").await?;
        if flavors.iter().any(|f| f.extra_specs.is_none()) {
            return Err(ProviderError::Api(format!(
                "Nova did not embed extra_specs in /flavors/detail: it must support compute microversion {COMPUTE_MICROVERSION}"
            )));
        }
        Ok(flavors)
    }

    pub(super) async fn list_networks(&self) -> Result<Vec<api::Network>, ProviderError> {
        let page = self.client.page_size.to_string();
        let path = format!("/networks?{}", query(&[("limit", &page)]));
        self.client.list(Service::Network, &path, "networks").await
    }

    pub(super) async fn list_subnets(&self) -> Result<Vec<api::Subnet>, ProviderError> {
        let page = self.client.page_size.to_string();
        let path = format!("/subnets?{}", query(&[("limit", &page)]));
        self.client.list(Service::Network, &path, "subnets").await
    }

    pub(super) async fn quota(&self, project_id: &str) -> Result<api::QuotaSet, ProviderError> {
        let r = self
            .client
            .get(
                Service::Compute,
                &format!("/os-quota-sets/{}", seg(project_id)),
            )
            .await?;
        Ok(r.parse::<api::QuotaSetResponse>("quota set")?.quota_set)
    }

    /// Add projects to `out`; returns the owned ones.
    pub(super) fn add_projects<'a>(
        &self,
        out: &mut Observed,
        projects: &'a [api::Project],
    ) -> Vec<&'a api::Project> {
        let mut owned = Vec::new();
        for p in projects {
            let id = ResourceId::new(&self.dc, Kind::Project, p.name.clone());
            if project_owned(p, &self.owner_tag) && out.resources.get(&id).is_none() {
                out.resources.insert(project_resource(&self.dc, p));
                owned.push(p);
            } else {
                out.unowned.push(self.unowned("project", &p.name, &p.id));
            }
        }
        owned
    }

    pub(super) fn add_flavors(&self, out: &mut Observed, flavors: &[api::Flavor]) {
        for f in flavors {
            let id = ResourceId::new(&self.dc, Kind::Flavor, f.name.clone());
            if flavor_owned(f, &self.owner_tag) && out.resources.get(&id).is_none() {
                out.resources.insert(flavor_resource(&self.dc, f));
            } else {
                out.unowned.push(self.unowned("flavor", &f.name, &f.id));
            }
        }
    }

    pub(super) fn add_networks(
        &self,
        out: &mut Observed,
        networks: &[api::Network],
        subnets: &[api::Subnet],
    ) {
        let mut owned: HashMap<&str, &str> = HashMap::new();
        for n in networks {
            let id = ResourceId::new(&self.dc, Kind::Network, n.name.clone());
            if network_owned(n, &self.owner_tag) && out.resources.get(&id).is_none() {
                out.resources.insert(network_resource(&self.dc, n));
                owned.insert(&n.id, &n.name);
            } else {
                out.unowned.push(self.unowned("network", &n.name, &n.id));
            }
        }
        for s in subnets {
            let network = owned.get(s.network_id.as_str()).copied();
            let name = if s.name.is_empty() {
                network.unwrap_or_default().to_string()
            } else {
                s.name.clone()
            };
            let id = ResourceId::new(&self.dc, Kind::Subnet, name.clone());
            match network {
                Some(net) if out.resources.get(&id).is_none() => {
                    out.resources
                        .insert(subnet_resource(&self.dc, s, &name, net));
                }
                _ => out.unowned.push(self.unowned("subnet", &name, &s.id)),
            }
        }
    }
}

pub fn project_owned(p: &api::Project, owner: &str) -> bool {
    p.tags.iter().any(|t| t == owner)
}

pub fn flavor_owned(f: &api::Flavor, owner: &str) -> bool {
    f.extra_specs
        .as_ref()
        .and_then(|s| s.get(OWNER_SPEC))
        .is_some_and(|v| v == owner)
}

pub fn network_owned(n: &api::Network, owner: &str) -> bool {
    n.tags.iter().any(|t| t == owner)
}

fn owned_resource<F: KindFields>(id: ResourceId, external_id: &str, fields: &F) -> Resource {
    let mut r = Resource::with_fields(id, fields);
    r.owned = true;
    r.external_id = Some(external_id.to_string());
    r
}

pub fn project_resource(dc: &str, p: &api::Project) -> Resource {
    owned_resource(
        ResourceId::new(dc, Kind::Project, p.name.clone()),
        &p.id,
        &ProjectFields {
            description: p.description.clone(),
            tags: sorted(&p.tags),
        },
    )
}

pub fn quota_resource(dc: &str, p: &api::Project, q: &api::QuotaSet) -> Resource {
    owned_resource(
        ResourceId::new(dc, Kind::Quota, p.name.clone()),
        &p.id,
        &QuotaFields {
            instances: q.instances,
            cores: q.cores,
            ram: q.ram,
        },
    )
}

pub fn flavor_resource(dc: &str, f: &api::Flavor) -> Resource {
    owned_resource(
        ResourceId::new(dc, Kind::Flavor, f.name.clone()),
        &f.id,
        &FlavorFields {
            vcpus: f.vcpus,
            ram: f.ram,
            disk: f.disk,
            is_public: f.is_public,
            extra_specs: f.extra_specs.clone().unwrap_or_default(),
        },
    )
}

pub fn network_resource(dc: &str, n: &api::Network) -> Resource {
    let (ty, phys, segid) = n.provider();
    owned_resource(
        ResourceId::new(dc, Kind::Network, n.name.clone()),
        &n.id,
        &NetworkFields {
            provider_network_type: ty,
            provider_physical_network: phys,
            provider_segmentation_id: segid,
            shared: n.shared,
            tags: sorted(&n.tags),
        },
    )
}

pub fn subnet_resource(dc: &str, s: &api::Subnet, name: &str, network: &str) -> Resource {
    owned_resource(
        ResourceId::new(dc, Kind::Subnet, name),
        &s.id,
        &SubnetFields {
            network: network.to_string(),
            cidr: s.cidr.clone(),
            gateway_ip: s.gateway_ip.clone(),
            enable_dhcp: s.enable_dhcp,
            ip_version: s.ip_version,
        },
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::openstack::with_owner;

    #[test]
    fn ownership_and_mapping() {
        let f: api::Flavor = serde_json::from_value(json!({
            "id": "f1", "name": "gpu.h100", "vcpus": 32, "ram": 262144, "disk": 200,
            "os-flavor-access:is_public": true, "swap": "",
            "extra_specs": {"strata:owner": "strata-acme", "pci_passthrough:alias": "h100:1"}
        }))
        .expect("flavor");
        assert!(flavor_owned(&f, "strata-acme"));
        assert!(!flavor_owned(&f, "strata-other"));
        let r = flavor_resource("fra1", &f);
        let fields: FlavorFields = r.fields_as().expect("flavor fields");
        assert_eq!(fields.ram, 262144);
        assert_eq!(fields.extra_specs["pci_passthrough:alias"], "h100:1");
        assert_eq!(r.external_id.as_deref(), Some("f1"));

        let n: api::Network = serde_json::from_value(json!({
            "id": "n1", "name": "t-app", "shared": false, "tags": ["z", "strata-acme"],
            "provider:network_type": "vlan", "provider:physical_network": "physnet1",
            "provider:segmentation_id": 120
        }))
        .expect("network");
        let r: NetworkFields = network_resource("fra1", &n)
            .fields_as()
            .expect("network fields");
        assert_eq!(r.provider_network_type.as_deref(), Some("vlan"));
        assert_eq!(r.provider_segmentation_id, Some(120));
        assert_eq!(r.tags, ["strata-acme", "z"]);
        assert_eq!(
            with_owner(vec!["b".into(), "a".into()], "a"),
            vec!["a", "b"]
        );
    }
}
