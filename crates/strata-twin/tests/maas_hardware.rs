//! Hardware facts as MAAS 3.x reports them after commissioning, and custom
//! commissioning scripts: a seed's CPU, memory, NUMA nodes, DMI (BIOS) facts, NIC
//! speeds and GPUs show on the machine, its interfaces, its node devices and its
//! commissioning results; each deviation an onboarding check looks for shows where
//! MAAS shows it (PCIe link state only to a script reading sysfs); uploaded scripts
//! (`/scripts/`) are validated as MAAS's form validates them, run at commissioning
//! against the machine's fake sysfs, and fail commissioning when they fail.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use strata_twin::{
    Clock, DcSeed, FaultSpec, RunningTwin, SeedGpu, SeedHardwareInfo, SeedMachine, SeedNicSpeed,
    SeedNumaNode, TwinOptions,
};

fn h100(numa_node: u32, pci_address: &str) -> SeedGpu {
    SeedGpu {
        model: "H100 SXM5 80GB".into(),
        vendor_id: "10de".into(),
        device_id: "2330".into(),
        pcie_gen: 5,
        pcie_width: 16,
        numa_node,
        pci_address: Some(pci_address.into()),
        ..SeedGpu::default()
    }
}

/// A 2-socket GPU server as the hardware profile describes it.
fn server(i: u8) -> SeedMachine {
    SeedMachine {
        serial: format!("HW{i:04}"),
        pxe_mac: format!("52:54:00:aa:00:{i:02x}"),
        cpu_count: 8,
        memory_mib: 65536,
        storage_gb: 960,
        nics: vec!["eno1".into(), "eno2".into()],
        gpus: vec![h100(0, "0000:19:00.0"), h100(1, "0000:9b:00.0")],
        cpu_model: "Intel(R) Xeon(R) Platinum 8480+".into(),
        cpu_speed_mhz: 3800,
        hardware_info: SeedHardwareInfo {
            system_vendor: Some("Supermicro".into()),
            system_product: Some("SYS-821GE-TNHR".into()),
            mainboard_vendor: Some("Supermicro".into()),
            mainboard_product: Some("X13DEG-OAD".into()),
            mainboard_firmware_vendor: Some("American Megatrends International, LLC.".into()),
            mainboard_firmware_version: Some("2.1".into()),
            mainboard_firmware_date: Some("03/14/2024".into()),
            ..SeedHardwareInfo::default()
        },
        numa_nodes: vec![
            SeedNumaNode {
                index: 0,
                memory_mib: 32768,
                cores: vec![0, 1, 2, 3],
            },
            SeedNumaNode {
                index: 1,
                memory_mib: 32768,
                cores: vec![4, 5, 6, 7],
            },
        ],
        nic_speeds: vec![SeedNicSpeed {
            nic: "eno2".into(),
            numa_node: Some(1),
            ..SeedNicSpeed::default()
        }],
        ..SeedMachine::default()
    }
}

async fn start(machines: Vec<SeedMachine>) -> RunningTwin {
    strata_twin::start_with_clock(
        TwinOptions {
            dcs: vec![DcSeed {
                name: "fra1".into(),
                machines,
                ..DcSeed::default()
            }],
            listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
            faults: FaultSpec::default(),
            latency_ms: 0,
            state_file: None,
            seed: 11,
            timing: Default::default(),
        },
        Clock::virtual_now(),
    )
    .await
    .expect("start")
}

/// A small MAAS client (OAuth PLAINTEXT).
struct Maas {
    http: reqwest::Client,
    api: String,
    admin: String,
    key: (String, String, String),
    clock: Clock,
}

struct Reply {
    status: u16,
    json: Value,
    text: String,
}

impl Maas {
    fn new(twin: &RunningTwin) -> Self {
        let doc = twin.endpoints();
        let url = doc["dcs"][0]["maas"]["url"].as_str().expect("url");
        let key = doc["dcs"][0]["maas"]["api_key"].as_str().expect("key");
        let mut parts = key.splitn(3, ':');
        let mut next = || parts.next().expect("key part").to_string();
        Maas {
            http: reqwest::Client::new(),
            api: format!("{url}api/2.0/"),
            admin: format!("http://{}/_twin", twin.addr),
            key: (next(), next(), next()),
            clock: twin.clock().clone(),
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Reply {
        let (ck, tk, secret) = &self.key;
        let auth = format!(
            "OAuth oauth_version=\"1.0\", oauth_signature_method=\"PLAINTEXT\", oauth_consumer_key=\"{ck}\", oauth_token=\"{tk}\", oauth_signature=\"&{secret}\", oauth_nonce=\"{}\", oauth_timestamp=\"1\"",
            uuid::Uuid::new_v4().simple()
        );
        let r = rb.header("Authorization", auth).send().await.expect("send");
        let status = r.status().as_u16();
        let json_body = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"));
        let text = r.text().await.expect("body");
        let json = if json_body {
            serde_json::from_str(&text).expect("json")
        } else {
            Value::Null
        };
        Reply { status, json, text }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.api)).query(query))
            .await
    }

    async fn ok(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let r = self.get(path, query).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        r.json
    }

    /// POST a multipart body (as python-libmaas and the CLI send), `op` in the query.
    async fn post(&self, path: &str, op: Option<&str>, form: &[(&str, &str)]) -> Reply {
        let mut rb = self.http.post(format!("{}{path}", self.api));
        if let Some(op) = op {
            rb = rb.query(&[("op", op)]);
        }
        let mut mp = reqwest::multipart::Form::new();
        for (k, v) in form {
            mp = mp.text(k.to_string(), v.to_string());
        }
        self.send(rb.multipart(mp)).await
    }

    async fn put(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.send(self.http.put(format!("{}{path}", self.api)).form(form))
            .await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(format!("{}{path}", self.api)))
            .await
    }

    /// The machine with this serial (MAAS shows it in `hardware_info`).
    async fn by_serial(&self, serial: &str) -> String {
        let all = self.ok("machines/", &[]).await;
        all.as_array()
            .expect("machines")
            .iter()
            .find(|m| m["hardware_info"]["system_serial"] == serial)
            .and_then(|m| m["system_id"].as_str())
            .unwrap_or_else(|| panic!("no machine {serial}"))
            .to_string()
    }

    async fn upload(&self, form: &[(&str, &str)]) -> Value {
        let r = self.post("scripts/", None, form).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json
    }

    /// Commission and wait (moving the twin's clock) until the machine settles.
    async fn commission(&self, sid: &str, form: &[(&str, &str)]) -> Value {
        let r = self
            .post(&format!("machines/{sid}/"), Some("commission"), form)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        for _ in 0..200 {
            let m = self.ok(&format!("machines/{sid}/"), &[]).await;
            if ![1, 21].contains(&m["status"].as_u64().unwrap_or(0)) {
                return m;
            }
            self.clock.advance(Duration::from_millis(100));
        }
        panic!("{sid} never finished commissioning");
    }

    /// The current commissioning results, outputs included.
    async fn results(&self, sid: &str) -> Vec<Value> {
        let set = self
            .ok(
                &format!("nodes/{sid}/results/current-commissioning/"),
                &[("include_output", "1")],
            )
            .await;
        set["results"].as_array().expect("results").clone()
    }
}

fn b64(v: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("base64 string"))
        .expect("base64");
    String::from_utf8(bytes).expect("utf-8")
}

fn result<'a>(results: &'a [Value], name: &str) -> &'a Value {
    results
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no result {name}"))
}

/// Prints every GPU function's link as sysfs shows it: address, current and maximum
/// speed and width, NUMA node.
const GPU_LINKS: &str = r#"#!/bin/sh
# --- Start MAAS 1.0 script metadata ---
# name: gpu-pcie-links
# title: GPU PCIe links
# script_type: commissioning
# hardware_type: gpu
# timeout: 30
# --- End MAAS 1.0 script metadata ---
for d in "${SYSFS_ROOT:-/sys}"/bus/pci/devices/*; do
  case "$(cat "$d/class")" in
    0x03*) echo "$(basename "$d") $(cat "$d/vendor"):$(cat "$d/device") $(cat "$d/current_link_speed")/x$(cat "$d/current_link_width") max $(cat "$d/max_link_speed")/x$(cat "$d/max_link_width") numa $(cat "$d/numa_node")" ;;
  esac
done
"#;

#[tokio::test]
async fn commissioning_reports_the_facts_where_maas_does() {
    let twin = start(vec![server(1)]).await;
    let c = Maas::new(&twin);
    let sid = c.by_serial("HW0001").await;
    let m = c.commission(&sid, &[]).await;
    assert_eq!(m["status_name"], "Ready");
    assert_eq!(m["commissioning_status_name"], "Passed");
    assert_eq!(m["cpu_count"], 8);
    assert_eq!(m["cpu_speed"], 3800);
    assert_eq!(m["memory"], 65536);
    let hw = &m["hardware_info"];
    assert_eq!(hw["cpu_model"], "Intel(R) Xeon(R) Platinum 8480+");
    assert_eq!(hw["system_vendor"], "Supermicro");
    assert_eq!(hw["system_product"], "SYS-821GE-TNHR");
    assert_eq!(hw["system_serial"], "HW0001");
    assert_eq!(hw["mainboard_product"], "X13DEG-OAD");
    assert_eq!(hw["mainboard_firmware_version"], "2.1");
    assert_eq!(hw["mainboard_firmware_date"], "03/14/2024");
    assert_eq!(
        hw["mainboard_firmware_vendor"],
        "American Megatrends International, LLC."
    );
    assert_eq!(
        m["numanode_set"],
        json!([
            {"index": 0, "memory": 32768, "cores": [0, 1, 2, 3], "hugepages_set": []},
            {"index": 1, "memory": 32768, "cores": [4, 5, 6, 7], "hugepages_set": []},
        ])
    );
    // NICs: speeds, carrier, NUMA node, on the machine and the interfaces endpoint.
    let ifaces = c.ok(&format!("nodes/{sid}/interfaces/"), &[]).await;
    let by_name = |n: &str| {
        ifaces
            .as_array()
            .expect("interfaces")
            .iter()
            .find(|i| i["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no {n}"))
    };
    for (name, numa) in [("eno1", 0), ("eno2", 1)] {
        let i = by_name(name);
        assert_eq!(i["interface_speed"], 25000, "{i}");
        assert_eq!(i["link_speed"], 25000);
        assert_eq!(i["link_connected"], true);
        assert_eq!(i["numa_node"], numa);
        assert_eq!(i["product"], "MT2892 Family [ConnectX-6 Dx]");
    }
    assert_eq!(m["interface_set"][0]["interface_speed"], 25000);
    // The listing shows the same facts.
    let listed = c.ok("machines/", &[("id", &sid)]).await;
    assert_eq!(listed[0]["hardware_info"], m["hardware_info"]);
    assert_eq!(listed[0]["numanode_set"], m["numanode_set"]);
    // Node devices: GPUs with PCI address, NUMA node and ids; NICs with their interface.
    let gpus = c
        .ok(
            &format!("nodes/{sid}/devices/"),
            &[("hardware_type", "gpu")],
        )
        .await;
    let gpus = gpus.as_array().expect("devices");
    assert_eq!(gpus.len(), 2);
    for (g, (addr, numa)) in gpus.iter().zip([("0000:19:00.0", 0), ("0000:9b:00.0", 1)]) {
        assert_eq!(g["pci_address"], addr);
        assert_eq!(g["numa_node"], numa);
        assert_eq!(g["vendor_id"], "10de");
        assert_eq!(g["product_id"], "2330");
        assert_eq!(g["product_name"], "H100 SXM5 80GB");
        assert_eq!(g["hardware_type_name"], "GPU");
        assert_eq!(g["bus_name"], "PCIE");
        assert!(g.get("pcie_link").is_none(), "MAAS has no link state: {g}");
    }
    let one = c
        .ok(&format!("nodes/{sid}/devices/0000:9b:00.0/"), &[])
        .await;
    assert_eq!(one["numa_node"], 1);
    let nics = c
        .ok(
            &format!("nodes/{sid}/devices/"),
            &[("hardware_type", "network")],
        )
        .await;
    assert_eq!(nics[1]["physical_interface"]["name"], "eno2");
    assert_eq!(nics[1]["numa_node"], 1);
    assert_eq!(nics[1]["commissioning_driver"], "mlx5_core");
    // The builtin commissioning output: LXD's machine-resources document.
    let results = c.results(&sid).await;
    let names: Vec<&str> = results.iter().filter_map(|r| r["name"].as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "results sorted by name, as MAAS lists them");
    let r = result(&results, "50-maas-01-commissioning");
    assert_eq!(r["status_name"], "Passed");
    assert_eq!(r["exit_status"], 0);
    assert!(r["script_id"].is_u64() && r["script_revision_id"].is_u64());
    let doc: Value = serde_json::from_str(&b64(&r["output"])).expect("resources JSON");
    let res = &doc["resources"];
    assert_eq!(res["cpu"]["total"], 8);
    assert_eq!(
        res["cpu"]["sockets"][0]["name"],
        "Intel(R) Xeon(R) Platinum 8480+"
    );
    assert_eq!(
        res["cpu"]["sockets"][1]["cores"][0]["threads"][0]["numa_node"],
        1
    );
    assert_eq!(res["memory"]["total"], 65536u64 * 1024 * 1024);
    assert_eq!(res["memory"]["nodes"][1]["total"], 32768u64 * 1024 * 1024);
    assert_eq!(res["gpu"]["cards"][1]["pci_address"], "0000:9b:00.0");
    assert_eq!(res["gpu"]["cards"][1]["numa_node"], 1);
    let port = &res["network"]["cards"][0]["ports"][0];
    assert_eq!(port["supported_modes"], json!(["25000baseCR/Full"]));
    assert_eq!(port["link_speed"], 25000);
    assert_eq!(port["link_detected"], true);
    assert_eq!(res["system"]["firmware"]["version"], "2.1");
    assert_eq!(res["system"]["motherboard"]["product"], "X13DEG-OAD");
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn deviations_show_where_maas_shows_them() {
    let mut x8 = server(1);
    x8.gpus[1].pcie_width = 8;
    x8.gpus[1].max_pcie_width = 16;
    let mut gen4 = server(2);
    gen4.gpus[0].pcie_gen = 4;
    gen4.gpus[0].max_pcie_gen = 5;
    let mut dimm = server(3);
    dimm.memory_mib = 65536 - 16384;
    dimm.numa_nodes[1].memory_mib = 16384;
    let mut slow_nic = server(4);
    slow_nic.nic_speeds = vec![
        // A 10G card where the profile wants 25G.
        SeedNicSpeed {
            nic: "eno2".into(),
            speed_mbps: 10000,
            ..SeedNicSpeed::default()
        },
        // A 25G port whose link trained at 10G.
        SeedNicSpeed {
            nic: "eno1".into(),
            link_speed_mbps: Some(10000),
            ..SeedNicSpeed::default()
        },
    ];
    let mut old_bios = server(5);
    old_bios.hardware_info.mainboard_firmware_version = Some("1.4".into());
    let mut broken = server(6);
    broken.commissioning_fails = true;
    let mut unplugged = server(7);
    unplugged.nic_speeds = vec![SeedNicSpeed {
        nic: "eno2".into(),
        link_connected: Some(false),
        ..SeedNicSpeed::default()
    }];
    let twin = start(vec![x8, gen4, dimm, slow_nic, old_bios, broken, unplugged]).await;
    let c = Maas::new(&twin);
    c.upload(&[("script", GPU_LINKS)]).await;
    let mut sids = Vec::new();
    for i in 1..=7 {
        sids.push(c.by_serial(&format!("HW{i:04}")).await);
    }
    let mut machines = Vec::new();
    for sid in &sids {
        machines.push(c.commission(sid, &[]).await);
    }
    let links = |results: &[Value]| b64(&result(results, "gpu-pcie-links")["stdout"]);

    // A GPU at x8: only the sysfs script sees it; MAAS's devices look the same.
    let out = links(&c.results(&sids[0]).await);
    assert_eq!(
        out,
        "0000:19:00.0 0x10de:0x2330 32.0 GT/s PCIe/x16 max 32.0 GT/s PCIe/x16 numa 0\n\
         0000:9b:00.0 0x10de:0x2330 32.0 GT/s PCIe/x8 max 32.0 GT/s PCIe/x16 numa 1\n"
    );
    assert_eq!(machines[0]["status_name"], "Ready");
    // A GPU at Gen4 in a Gen5 slot.
    let out = links(&c.results(&sids[1]).await);
    assert!(
        out.starts_with("0000:19:00.0 0x10de:0x2330 16.0 GT/s PCIe/x16 max 32.0 GT/s PCIe/x16"),
        "{out}"
    );
    // A missing DIMM: total and node memory.
    assert_eq!(machines[2]["memory"], 49152);
    assert_eq!(machines[2]["numanode_set"][1]["memory"], 16384);
    // A 10G NIC, and a 25G port linked at 10G.
    let ifaces = c.ok(&format!("nodes/{}/interfaces/", sids[3]), &[]).await;
    let speeds: Vec<(String, u64, u64)> = ifaces
        .as_array()
        .expect("interfaces")
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or("").to_string(),
                i["interface_speed"].as_u64().unwrap_or(0),
                i["link_speed"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        speeds,
        vec![("eno1".into(), 25000, 10000), ("eno2".into(), 10000, 10000)]
    );
    assert_eq!(
        ifaces[1]["product"],
        "Ethernet Controller X710 for 10GbE SFP+"
    );
    let nic_devs = c
        .ok(
            &format!("nodes/{}/devices/", sids[3]),
            &[("hardware_type", "network")],
        )
        .await;
    assert_eq!(nic_devs[1]["vendor_id"], "8086");
    assert_eq!(nic_devs[1]["commissioning_driver"], "i40e");
    // An old BIOS.
    assert_eq!(
        machines[4]["hardware_info"]["mainboard_firmware_version"],
        "1.4"
    );
    // A machine that fails commissioning.
    let m = &machines[5];
    assert_eq!(
        (m["status"].clone(), m["status_name"].clone()),
        (json!(2), json!("Failed commissioning"))
    );
    assert_eq!(m["commissioning_status_name"], "Failed");
    let results = c.results(&sids[5]).await;
    let r = result(&results, "50-maas-01-commissioning");
    assert_eq!(
        (r["status"].clone(), r["exit_status"].clone()),
        (json!(3), json!(1))
    );
    assert!(!b64(&r["stderr"]).is_empty());
    let tests = c
        .ok(&format!("nodes/{}/results/current-testing/", sids[5]), &[])
        .await;
    assert_eq!(tests["results"][0]["status_name"], "Aborted");
    // An unplugged port: no carrier, no link speed.
    let ifaces = c.ok(&format!("nodes/{}/interfaces/", sids[6]), &[]).await;
    assert_eq!(ifaces[1]["link_connected"], false);
    assert_eq!(ifaces[1]["link_speed"], 0);
    assert_eq!(ifaces[1]["interface_speed"], 25000);
    assert_eq!(ifaces[0]["link_connected"], true);
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn uploaded_scripts_run_at_commissioning() {
    let mut plain = server(2);
    plain.gpus.clear();
    let twin = start(vec![server(1), plain]).await;
    let c = Maas::new(&twin);
    // Upload: the embedded metadata fills the form.
    let s = c
        .upload(&[("script", GPU_LINKS), ("comment", "first")])
        .await;
    assert_eq!(s["name"], "gpu-pcie-links");
    assert_eq!(s["title"], "GPU PCIe links");
    assert_eq!(s["type"], 0);
    assert_eq!(s["type_name"], "Commissioning script");
    assert_eq!(s["hardware_type"], 5);
    assert_eq!(s["hardware_type_name"], "GPU");
    assert_eq!(s["timeout"], "0:00:30");
    assert_eq!(s["tags"], json!(["gpu"]));
    assert_eq!(s["default"], false);
    assert_eq!(s["history"][0]["comment"], "first");
    assert!(
        s["resource_uri"]
            .as_str()
            .is_some_and(|u| u.ends_with("/api/2.0/scripts/gpu-pcie-links")),
        "{s}"
    );
    // A python3 script, run only where a device matches, and one that only runs
    // when named (`noauto`).
    let numa_check = "#!/usr/bin/env python3\nimport os, pathlib\nroot = pathlib.Path(os.environ.get('SYSFS_ROOT', '/sys'))\nfor n in sorted((root / 'devices/system/node').iterdir()):\n    print(n.name, (n / 'cpulist').read_text().strip())\nopen(os.environ['RESULT_PATH'], 'w').write('status: passed\\n')\n";
    c.upload(&[
        ("name", "numa-cpus"),
        ("type", "commissioning"),
        ("for_hardware", "pci:10de:2330"),
        ("script", numa_check),
    ])
    .await;
    c.upload(&[
        ("name", "bios-version"),
        ("type", "commissioning"),
        ("tags", "noauto,firmware"),
        (
            "script",
            "#!/bin/bash\ncat \"$SYSFS_ROOT/class/dmi/id/bios_version\"\n",
        ),
    ])
    .await;
    // Listing, filters, read by id, the text.
    let all = c.ok("scripts/", &[("type", "commissioning")]).await;
    let names: Vec<&str> = all
        .as_array()
        .expect("scripts")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(names.contains(&"50-maas-01-commissioning"), "{names:?}");
    assert!(names.ends_with(&["gpu-pcie-links", "numa-cpus", "bios-version"]));
    let firmware = c.ok("scripts/", &[("filters", "firmware")]).await;
    assert_eq!(firmware.as_array().map(Vec::len), Some(1));
    let by_id = c
        .ok(&format!("scripts/{}", s["id"]), &[("include_script", "1")])
        .await;
    assert_eq!(b64(&by_id["history"][0]["data"]), GPU_LINKS);
    let r = c.get("scripts/gpu-pcie-links", &[("op", "download")]).await;
    assert_eq!((r.status, r.text.as_str()), (200, GPU_LINKS));

    // The scripts named run (a `for_hardware` one where its device is found).
    let gpu_box = c.by_serial("HW0001").await;
    let m = c
        .commission(
            &gpu_box,
            &[("commissioning_scripts", "gpu-pcie-links,numa-cpus")],
        )
        .await;
    assert_eq!(m["status_name"], "Ready");
    let results = c.results(&gpu_box).await;
    let r = result(&results, "gpu-pcie-links");
    assert_eq!(r["status_name"], "Passed");
    assert_eq!(r["exit_status"], 0);
    assert_eq!(r["script_id"], s["id"]);
    assert_eq!(r["script_revision_id"], s["history"][0]["id"]);
    assert_eq!(b64(&r["output"]), b64(&r["stdout"]));
    assert_eq!(b64(&r["stderr"]), "");
    assert!(
        b64(&r["stdout"]).contains("0000:19:00.0 0x10de:0x2330 32.0 GT/s PCIe/x16"),
        "{}",
        b64(&r["stdout"])
    );
    let r = result(&results, "numa-cpus");
    assert_eq!(b64(&r["stdout"]), "node0 0-3\nnode1 4-7\n");
    assert_eq!(b64(&r["result"]), "status: passed\n");
    assert!(!results.iter().any(|r| r["name"] == "bios-version"));
    // Named by tag, a script runs; a `for_hardware` script skips a machine without
    // its device. Named nothing, commissioning runs the uploaded scripts that run by
    // default: neither `noauto` nor `for_hardware` ones.
    let plain = c.by_serial("HW0002").await;
    c.commission(&plain, &[("commissioning_scripts", "firmware,numa-cpus")])
        .await;
    let results = c.results(&plain).await;
    assert_eq!(b64(&result(&results, "bios-version")["stdout"]), "2.1\n");
    assert!(!results.iter().any(|r| r["name"] == "numa-cpus"));
    assert!(!results.iter().any(|r| r["name"] == "gpu-pcie-links"));
    c.commission(&gpu_box, &[]).await;
    let results = c.results(&gpu_box).await;
    let ran: Vec<&str> = results
        .iter()
        .filter(|r| r["script_id"].as_u64() >= s["id"].as_u64())
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(ran, vec!["gpu-pcie-links"]);
    // Downloading one result's stdout.
    let r = c
        .get(
            &format!("nodes/{plain}/results/current-commissioning/"),
            &[
                ("op", "download"),
                ("filters", "bios-version"),
                ("output", "stdout"),
            ],
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (200, "2.1\n"));

    // A new revision, revert, tags, delete.
    let r = c
        .put(
            "scripts/bios-version",
            &[("script", "#!/bin/sh\necho v2\n"), ("comment", "second")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["history"].as_array().map(Vec::len), Some(2));
    let first_rev = r.json["history"][1]["id"].to_string();
    let old = c
        .get(
            "scripts/bios-version",
            &[("op", "download"), ("revision", &first_rev)],
        )
        .await;
    assert!(old.text.contains("bios_version"), "{}", old.text);
    let r = c
        .post("scripts/bios-version", Some("revert"), &[("to", "-1")])
        .await;
    assert_eq!(
        r.json["history"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    let r = c
        .post("scripts/bios-version", Some("add_tag"), &[("tag", "bios")])
        .await;
    assert!(
        r.json["tags"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("bios")))
    );
    let r = c
        .post(
            "scripts/bios-version",
            Some("remove_tag"),
            &[("tag", "noauto")],
        )
        .await;
    assert!(
        !r.json["tags"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("noauto")))
    );
    let r = c.delete("scripts/bios-version").await;
    assert_eq!(r.status, 204);
    let r = c.get("scripts/bios-version", &[]).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (404, "No Script matches the given query.")
    );
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_failing_script_fails_commissioning() {
    let twin = start(vec![server(1), server(2)]).await;
    let c = Maas::new(&twin);
    // Checks the profile: every GPU at Gen5 x16, else exits non-zero.
    c.upload(&[
        ("name", "check-gpu-links"),
        ("type", "commissioning"),
        (
            "script",
            "#!/bin/bash\nrc=0\nfor d in \"${SYSFS_ROOT:-/sys}\"/bus/pci/devices/*; do\n  [[ $(cat \"$d/class\") == 0x03* ]] || continue\n  w=$(cat \"$d/current_link_width\")\n  if [ \"$w\" != 16 ]; then echo \"$(basename \"$d\"): x$w, want x16\" >&2; rc=3; fi\ndone\necho checked\nexit $rc\n",
        ),
    ])
    .await;
    let good = c.by_serial("HW0001").await;
    let bad = c.by_serial("HW0002").await;
    // The second machine's first GPU trains at x8 this time.
    let r = c
        .http
        .post(format!("{}/faults/object", c.admin))
        .json(&json!({"dc": "fra1", "service": "maas", "id": bad, "fault": "gpu_degraded"}))
        .send()
        .await
        .expect("fault");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(c.commission(&good, &[]).await["status_name"], "Ready");
    let m = c.commission(&bad, &[]).await;
    assert_eq!(m["status"], 2);
    assert_eq!(m["status_name"], "Failed commissioning");
    assert_eq!(m["commissioning_status_name"], "Failed");
    // MAAS still recorded what the builtins found.
    assert_eq!(m["cpu_count"], 8);
    let results = c.results(&bad).await;
    let r = result(&results, "check-gpu-links");
    assert_eq!(r["status"], 3);
    assert_eq!(r["status_name"], "Failed");
    assert_eq!(r["exit_status"], 3);
    assert_eq!(b64(&r["stdout"]), "checked\n");
    assert_eq!(b64(&r["stderr"]), "0000:19:00.0: x8, want x16\n");
    assert_eq!(b64(&r["output"]), "0000:19:00.0: x8, want x16\nchecked\n");
    assert_eq!(
        result(&results, "50-maas-01-commissioning")["status_name"],
        "Passed"
    );
    let tests = c
        .ok(&format!("nodes/{bad}/results/current-testing/"), &[])
        .await;
    assert_eq!(tests["results"][0]["status_name"], "Aborted");

    // A script past its timeout: killed, "Timed out", exit status 124.
    c.upload(&[
        ("name", "hangs"),
        ("type", "commissioning"),
        ("timeout", "1"),
        ("tags", "noauto"),
        ("script", "#!/bin/sh\necho start\nsleep 30\n"),
    ])
    .await;
    let m = c
        .commission(&good, &[("commissioning_scripts", "hangs")])
        .await;
    assert_eq!(m["status_name"], "Failed commissioning");
    let results = c.results(&good).await;
    let r = result(&results, "hangs");
    assert_eq!(
        (
            r["status"].clone(),
            r["status_name"].clone(),
            r["exit_status"].clone()
        ),
        (json!(4), json!("Timed out"), json!(124))
    );
    assert_eq!(b64(&r["stdout"]), "start\n");
    // Commissioning again without it passes: a failed machine can be recommissioned.
    c.delete("scripts/hangs").await;
    c.delete("scripts/check-gpu-links").await;
    assert_eq!(c.commission(&good, &[]).await["status_name"], "Ready");
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn invalid_uploads_are_refused_as_maas_refuses_them() {
    let twin = start(vec![server(1)]).await;
    let c = Maas::new(&twin);
    let ok_script = "#!/bin/sh\necho hi\n";
    c.upload(&[("name", "taken"), ("script", ok_script)]).await;
    let cases: Vec<(Vec<(&str, &str)>, Value)> = vec![
        (
            vec![("script", ok_script)],
            json!({"name": ["This field is required."], }),
        ),
        (
            vec![("name", "x")],
            json!({"script": ["This field is required."]}),
        ),
        (
            vec![("name", "x"), ("script", "echo no shebang\n")],
            json!({"script": ["Must start with shebang."]}),
        ),
        (
            vec![("name", "x"), ("script", ok_script), ("type", "nightly")],
            json!({"script_type": ["Script type must be commissioning, testing, release or deployment"]}),
        ),
        (
            vec![("name", "x"), ("script", ok_script), ("type", "9")],
            json!({"script_type": ["Invalid script type numeric value."]}),
        ),
        (
            vec![
                ("name", "x"),
                ("script", ok_script),
                ("hardware_type", "fpga"),
            ],
            json!({"hardware_type": ["Hardware type must be node, cpu, memory, storage, or gpu"]}),
        ),
        (
            vec![
                ("name", "x"),
                ("script", ok_script),
                ("parallel", "sometimes"),
            ],
            json!({"parallel": ["Script parallel must be disabled, instance, or any."]}),
        ),
        (
            vec![("name", "None"), ("script", ok_script)],
            json!({"name": ["\"none\" is a reserved name."]}),
        ),
        (
            vec![("name", "42"), ("script", ok_script)],
            json!({"name": ["Cannot be a number."]}),
        ),
        (
            vec![("name", "two words"), ("script", ok_script)],
            json!({"name": ["Name 'two words' contains disallowed characters, e.g. space or quotes."]}),
        ),
        (
            vec![("name", "taken"), ("script", ok_script)],
            json!({"name": ["Script with this Name already exists."]}),
        ),
        (
            vec![("name", "x"), ("script", ok_script), ("timeout", "soon")],
            json!({"timeout": ["Enter a valid duration."]}),
        ),
        (
            vec![
                ("name", "x"),
                ("script", ok_script),
                ("for_hardware", "gpu:h100"),
            ],
            json!({"for_hardware": ["Hardware identifier 'gpu:h100' must be a modalias, PCI ID, USB ID, system vendor, system product, system version, mainboard vendor, or mainboard product."]}),
        ),
        (
            vec![("name", "x"), ("comment", "why")],
            json!({"script": ["This field is required."], "comment": ["\"comment\" may only be used when specifying a \"script\" as well."]}),
        ),
        (
            vec![
                ("name", "x"),
                ("type", "testing"),
                (
                    "script",
                    "#!/bin/sh\n# --- Start MAAS 1.0 script metadata ---\n# script_type: commissioning\n# --- End MAAS 1.0 script metadata ---\n",
                ),
            ],
            json!({"script_type": ["May not override values defined in embedded YAML."]}),
        ),
        (
            vec![
                ("name", "x"),
                (
                    "script",
                    "#!/bin/sh\n# --- Start MAAS 1.0 script metadata ---\ntitle: no hash\n# --- End MAAS 1.0 script metadata ---\n",
                ),
            ],
            json!({"script": ["Missing \"#\" on YAML line."]}),
        ),
        (
            vec![
                ("name", "x"),
                (
                    "script",
                    "#!/bin/sh\n# --- Start MAAS 1.0 script metadata ---\n# results: [unclosed\n# --- End MAAS 1.0 script metadata ---\n",
                ),
            ],
            json!("invalid YAML"),
        ),
        (
            vec![
                ("name", "x"),
                (
                    "script",
                    "#!/bin/sh\n# --- Start MAAS 1.0 script metadata ---\n# results: {a: {description: no title}}\n# --- End MAAS 1.0 script metadata ---\n",
                ),
            ],
            json!({"results": ["title must be included in a result dictionary."]}),
        ),
    ];
    for (form, want) in cases {
        let r = c.post("scripts/", None, &form).await;
        assert_eq!(r.status, 400, "{form:?}: {}", r.text);
        if want == "invalid YAML" {
            let msgs = &r.json["script"];
            assert!(
                msgs[0]
                    .as_str()
                    .is_some_and(|m| m.starts_with("Invalid YAML: ")),
                "{}",
                r.text
            );
        } else {
            assert_eq!(r.json, want, "{form:?}");
        }
    }
    // Plain-text refusals.
    let r = c.delete("scripts/50-maas-01-commissioning").await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (400, "Unable to delete default script")
    );
    let r = c.get("scripts/no-such", &[]).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (404, "No Script matches the given query.")
    );
    let r = c.get("scripts/", &[("type", "nightly")]).await;
    assert_eq!(r.status, 400);
    let r = c
        .post("scripts/taken", Some("add_tag"), &[("tag", "a,b")])
        .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (400, "Tag may not contain a \",\".")
    );
    let r = c
        .put("scripts/50-maas-01-commissioning", &[("title", "mine")])
        .await;
    assert_eq!(
        r.json,
        json!({"title": ["Not allowed to change on default scripts."]})
    );
    // A commissioning naming an unknown script is refused before anything happens.
    let sid = c.by_serial("HW0001").await;
    let r = c
        .post(
            &format!("machines/{sid}/"),
            Some("commission"),
            &[("commissioning_scripts", "nope")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json,
        json!({"commissioning_scripts": ["Select a valid choice. nope is not one of the available choices."]})
    );
    let m = c.ok(&format!("machines/{sid}/"), &[]).await;
    assert_eq!(m["status_name"], "New");
    twin.shutdown().await.expect("shutdown");
}
