//! The twin's MAAS against the real python-libmaas client
//! (`scripts/clients/libmaas_check.py` for the lifecycle, this crate's
//! `tests/clients/libmaas_storage.py` for storage and
//! `tests/clients/libmaas_hardware.py` for hardware facts and commissioning
//! scripts; run with the test-tools venv).
//!
//! Set `STRATA_SKIP_CLIENT_TESTS=1` to skip; otherwise a missing venv or library is a
//! failure (install them with `scripts/install-test-deps.sh`). `STRATA_TOOLS_VENV`
//! selects another venv (default `/opt/strata-tools`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_twin::{
    DcSeed, FaultSpec, RunningTwin, SeedDisk, SeedGpu, SeedHardwareInfo, SeedMachine, SeedNicSpeed,
    SeedNumaNode, TwinOptions,
};

use strata_testkit::repo_root;

fn python() -> PathBuf {
    strata_testkit::venv_bin("python")
}

fn skip() -> bool {
    strata_testkit::OptOut::Clients.is_set()
}

/// The venv's python, with python-libmaas importable (a failure otherwise).
async fn libmaas_python() -> PathBuf {
    let py = python();
    assert!(
        py.exists(),
        "{} not found: run scripts/install-test-deps.sh (or set STRATA_TOOLS_VENV, or STRATA_SKIP_CLIENT_TESTS=1 to skip)",
        py.display()
    );
    let probe = tokio::process::Command::new(&py)
        .args(["-c", "import maas.client, bson"])
        .output()
        .await
        .expect("run python");
    assert!(
        probe.status.success(),
        "python-libmaas is not importable from {}: run scripts/install-test-deps.sh\n{}",
        py.display(),
        String::from_utf8_lossy(&probe.stderr)
    );
    py
}

/// Runs `script` with the twin's endpoints document; its JSON summary.
async fn run_script(py: &Path, script: &Path, twin: &RunningTwin) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tmp");
    let endpoints = dir.path().join("endpoints.json");
    twin.write_endpoints(&endpoints).expect("endpoints");
    let child = tokio::process::Command::new(py)
        .arg(script)
        .arg(&endpoints)
        .env("PYTHONWARNINGS", "default")
        .kill_on_drop(true)
        .output();
    let name = script.display();
    let out = tokio::time::timeout(Duration::from_secs(180), child)
        .await
        .unwrap_or_else(|_| panic!("{name} timed out"))
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    eprintln!("{name}:\n{stdout}{stderr}");
    serde_json::from_str(&stdout).expect("summary JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_libmaas_drives_the_lifecycle() {
    if skip() {
        strata_testkit::skip_note(strata_testkit::OptOut::Clients, "the python-libmaas check");
        return;
    }
    let py = libmaas_python().await;

    let machines: Vec<SeedMachine> = (0..4)
        .map(|i| SeedMachine {
            serial: format!("LIBMAAS{i:03}"),
            pxe_mac: format!("52:54:00:1b:00:{i:02x}"),
            cpu_count: 32,
            memory_mib: 131072,
            storage_gb: 960,
            nics: vec!["eno1".into(), "eno2".into()],
            gpus: if i == 3 {
                vec![SeedGpu {
                    model: "L40S".into(),
                    vendor_id: "10de".into(),
                    device_id: "26b9".into(),
                    pcie_gen: 4,
                    pcie_width: 16,
                    numa_node: 1,
                    ..SeedGpu::default()
                }]
            } else {
                vec![]
            },
            zone: None,
            ..SeedMachine::default()
        })
        .collect();
    let twin = strata_twin::start(TwinOptions {
        dcs: vec![DcSeed {
            name: "ams1".into(),
            machines,
            ..DcSeed::default()
        }],
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file: None,
        seed: 7,
        timing: Default::default(),
    })
    .await
    .expect("start");
    let script = repo_root().join("scripts/clients/libmaas_check.py");
    let summary = run_script(&py, &script, &twin).await;
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["machines"], 4);
    assert_eq!(summary["released"], "READY");
    assert_eq!(summary["deployed"]["status"], "DEPLOYED");
    assert_eq!(summary["deployed"]["distro_series"], "noble");
    assert_eq!(summary["impossible_allocation"], "refused");
    assert_eq!(
        summary["bridge"]["parents"],
        serde_json::json!(["bond0"]),
        "{summary}"
    );

    // The machine the client drove is back to Ready, untagged by release.
    let sid = summary["machine"]["system_id"].as_str().expect("system_id");
    let s = twin.state.service("ams1", "maas").expect("maas").summary();
    assert_eq!(s["machines"]["by_status"]["Ready"], 1, "{s} ({sid})");
    twin.shutdown().await.expect("shutdown");
}

/// python-libmaas reads what the twin renders for storage: after it builds a RAID-1
/// `md0` over partitions of sda and sdb (`Partitions.create`, `Raids.create`,
/// `BlockDevice.format`/`mount`), `machine.block_devices` with their `partitions`,
/// and `machine.raids` (references MAAS lists on the machine, loaded with `refresh`)
/// with their members and virtual device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_libmaas_builds_and_reads_a_raid() {
    if skip() {
        strata_testkit::skip_note(
            strata_testkit::OptOut::Clients,
            "the python-libmaas storage check",
        );
        return;
    }
    let py = libmaas_python().await;
    let disk = |name: &str, size_gb| SeedDisk {
        name: name.into(),
        size_gb,
        kind: "ssd".into(),
    };
    let twin = strata_twin::start(TwinOptions {
        dcs: vec![DcSeed {
            name: "ams1".into(),
            machines: vec![SeedMachine {
                serial: "LIBMAASRAID".into(),
                pxe_mac: "52:54:00:1b:01:01".into(),
                nics: vec!["eno1".into()],
                disks: vec![disk("sda", 480), disk("sdb", 480)],
                ..SeedMachine::default()
            }],
            ..DcSeed::default()
        }],
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file: None,
        seed: 9,
        timing: Default::default(),
    })
    .await
    .expect("start");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/libmaas_storage.py");
    let s = run_script(&py, &script, &twin).await;
    assert_eq!(s["ok"], true, "{s}");
    // The flat layout MAAS applied at commissioning, read through the client.
    assert_eq!(s["boot_disk"], "sda");
    assert_eq!(
        s["flat"][0],
        serde_json::json!([
            "/dev/disk/by-dname/sda-part1",
            536870912,
            "fat32",
            "/boot/efi"
        ])
    );
    assert_eq!(s["flat"][1][2], "ext4");
    assert_eq!(s["flat"][1][3], "/");
    // Block devices and partitions.
    let bds = &s["block_devices"];
    assert_eq!(bds["md0"]["type"], "virtual");
    assert_eq!(bds["md0"]["filesystem"], serde_json::json!(["ext4", "/"]));
    assert_eq!(
        bds["md0"]["used_for"],
        "ext4 formatted filesystem mounted at /"
    );
    for disk in ["sda", "sdb"] {
        let p = &bds[disk]["partitions"][0];
        assert_eq!(p["block_device"], s["block_device_ids"][disk], "{s}");
        assert_eq!(p["used_for"], "Active raid-1 device for md0");
        assert_eq!(p["fstype"], "raid");
        assert_eq!(bds[disk]["used_for"], "GPT partitioned with 1 partition");
    }
    // RAIDs.
    let r = &s["raids"][0];
    assert_eq!(r["name"], "md0");
    assert_eq!(r["level"], "raid-1");
    assert_eq!(
        r["devices"],
        serde_json::json!([
            ["Partition", "/dev/disk/by-dname/sda-part1"],
            ["Partition", "/dev/disk/by-dname/sdb-part1"]
        ])
    );
    assert_eq!(r["virtual_device"], "md0");
    assert_eq!(r["filesystem"], serde_json::json!(["ext4", "/"]));
    assert_eq!(s["raid_list"], serde_json::json!(["md0"]));
    twin.shutdown().await.expect("shutdown");
}

/// python-libmaas reads the hardware facts an onboarding check compares with the
/// hardware profile (CPU, memory, NUMA nodes, BIOS version, NIC speeds, GPUs with
/// their PCI address and NUMA node), uploads a commissioning script through its
/// generated handlers, and reads that script's output: the PCIe links the script
/// found in the machine's sysfs (one GPU trained at x8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_libmaas_reads_hardware_facts_and_script_output() {
    if skip() {
        strata_testkit::skip_note(
            strata_testkit::OptOut::Clients,
            "the python-libmaas hardware check",
        );
        return;
    }
    let py = libmaas_python().await;
    let gpu = |numa_node: u32, addr: &str, width: u8| SeedGpu {
        model: "H100 SXM5 80GB".into(),
        vendor_id: "10de".into(),
        device_id: "2330".into(),
        pcie_gen: 5,
        pcie_width: width,
        numa_node,
        pci_address: Some(addr.into()),
        max_pcie_width: 16,
        ..SeedGpu::default()
    };
    let twin = strata_twin::start(TwinOptions {
        dcs: vec![DcSeed {
            name: "ams1".into(),
            machines: vec![SeedMachine {
                serial: "LIBMAASHW".into(),
                pxe_mac: "52:54:00:1b:02:01".into(),
                cpu_count: 4,
                memory_mib: 32768,
                nics: vec!["eno1".into(), "eno2".into()],
                gpus: vec![gpu(0, "0000:19:00.0", 16), gpu(1, "0000:9b:00.0", 8)],
                cpu_model: "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz".into(),
                hardware_info: SeedHardwareInfo {
                    system_vendor: Some("Dell Inc.".into()),
                    mainboard_firmware_version: Some("1.4.2".into()),
                    ..SeedHardwareInfo::default()
                },
                numa_nodes: vec![
                    SeedNumaNode {
                        index: 0,
                        memory_mib: 16384,
                        cores: vec![0, 1],
                    },
                    SeedNumaNode {
                        index: 1,
                        memory_mib: 16384,
                        cores: vec![2, 3],
                    },
                ],
                nic_speeds: vec![SeedNicSpeed {
                    nic: "eno2".into(),
                    speed_mbps: 10000,
                    ..SeedNicSpeed::default()
                }],
                ..SeedMachine::default()
            }],
            ..DcSeed::default()
        }],
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file: None,
        seed: 13,
        timing: Default::default(),
    })
    .await
    .expect("start");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/libmaas_hardware.py");
    let s = run_script(&py, &script, &twin).await;
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(
        s["script"],
        serde_json::json!(["pcie-links", "Commissioning script"])
    );
    assert_eq!(s["status"], "READY");
    assert_eq!(
        (s["cpus"].clone(), s["memory"].clone()),
        (4.into(), 32768.into())
    );
    assert_eq!(s["cpu_model"], "Intel(R) Xeon(R) Gold 6338 CPU");
    assert_eq!(s["system_vendor"], "Dell Inc.");
    assert_eq!(s["bios_version"], "1.4.2");
    assert_eq!(
        s["numa"],
        serde_json::json!([[0, 16384, [0, 1]], [1, 16384, [2, 3]]])
    );
    assert_eq!(
        s["interfaces"],
        serde_json::json!({"eno1": [25000, 25000, true], "eno2": [10000, 10000, true]})
    );
    assert_eq!(
        s["gpus"],
        serde_json::json!([
            ["0000:19:00.0", 0, "10de", "2330"],
            ["0000:9b:00.0", 1, "10de", "2330"]
        ])
    );
    assert_eq!(s["pcie_links"]["status"], "Passed");
    assert_eq!(s["pcie_links"]["exit_status"], 0);
    assert_eq!(
        s["pcie_links"]["stdout"],
        "0000:19:00.0 32.0 GT/s PCIe x16\n0000:9b:00.0 32.0 GT/s PCIe x8\n"
    );
    twin.shutdown().await.expect("shutdown");
}
