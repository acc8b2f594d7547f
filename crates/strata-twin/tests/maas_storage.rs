//! A MAAS machine's storage over HTTP, as clients see it: the flat layout MAAS
//! applies when commissioning ends, `set_storage_layout`, partitions, a RAID-1
//! built from them, formatting and mounting its `md` device, all of it in one
//! `GET /machines/`; and what MAAS refuses (state rules, RAID member counts, used
//! members, sizes, unformatted mounts, unknown levels and layouts, deploys without
//! `/`). Storage survives a restart.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use strata_twin::{Clock, DcSeed, FaultSpec, RunningTwin, SeedDisk, SeedMachine, TwinOptions};

const MIB: u64 = 1024 * 1024;
const GB: u64 = 1_000_000_000;

fn disk(name: &str, size_gb: u64, kind: &str) -> SeedDisk {
    SeedDisk {
        name: name.into(),
        size_gb,
        kind: kind.into(),
    }
}

fn seed_machine(i: usize) -> SeedMachine {
    SeedMachine {
        serial: format!("ST{i:04}"),
        pxe_mac: format!("52:54:00:5a:00:{i:02x}"),
        cpu_count: 16,
        memory_mib: 65536,
        storage_gb: 960,
        nics: vec!["eno1".into()],
        disks: vec![
            disk("sda", 480, "ssd"),
            disk("sdb", 480, "ssd"),
            disk("nvme0n1", 960, "nvme"),
            disk("sdc", 4000, "hdd"),
        ],
        ..SeedMachine::default()
    }
}

fn opts(machines: Vec<SeedMachine>, state_file: Option<std::path::PathBuf>) -> TwinOptions {
    TwinOptions {
        dcs: vec![DcSeed {
            name: "fra1".into(),
            machines,
            ..DcSeed::default()
        }],
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file,
        seed: 11,
        timing: Default::default(),
    }
}

async fn start(o: TwinOptions) -> RunningTwin {
    strata_twin::start_with_clock(o, Clock::virtual_now())
        .await
        .expect("start")
}

/// A small MAAS client: OAuth PLAINTEXT, urlencoded bodies with repeated keys.
struct Maas {
    http: reqwest::Client,
    api: String,
    key: (String, String, String),
    clock: Clock,
}

/// (status, JSON body or null, body text)
type Answer = (u16, Value, String);

impl Maas {
    fn new(twin: &RunningTwin) -> Self {
        let doc = twin.endpoints();
        let url = doc["dcs"][0]["maas"]["url"].as_str().expect("url");
        let key = doc["dcs"][0]["maas"]["api_key"].as_str().expect("key");
        let mut k = key.splitn(3, ':').map(str::to_string);
        Maas {
            http: reqwest::Client::new(),
            api: format!("{url}api/2.0/"),
            key: (
                k.next().expect("ck"),
                k.next().expect("tk"),
                k.next().expect("secret"),
            ),
            clock: twin.clock().clone(),
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Answer {
        let (ck, tk, secret) = &self.key;
        let auth = format!(
            r#"OAuth oauth_version="1.0", oauth_signature_method="PLAINTEXT", oauth_consumer_key="{ck}", oauth_token="{tk}", oauth_signature="&{secret}", oauth_nonce="n", oauth_timestamp="1""#
        );
        let r = rb.header("Authorization", auth).send().await.expect("send");
        let status = r.status().as_u16();
        let json = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/json"));
        let text = r.text().await.expect("body");
        let v = if json {
            serde_json::from_str(&text).expect("json")
        } else {
            Value::Null
        };
        (status, v, text)
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.api)))
            .await
    }

    async fn post(&self, path: &str, op: Option<&str>, form: &[(&str, &str)]) -> Answer {
        let mut rb = self.http.post(format!("{}{path}", self.api));
        if let Some(op) = op {
            rb = rb.query(&[("op", op)]);
        }
        self.send(rb.form(form)).await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.send(self.http.delete(format!("{}{path}", self.api)))
            .await
    }

    async fn machine(&self, sid: &str) -> Value {
        let (s, v, t) = self.get(&format!("machines/{sid}/")).await;
        assert_eq!(s, 200, "{t}");
        v
    }

    async fn wait_status(&self, sid: &str, want: u64) -> Value {
        for _ in 0..400 {
            let m = self.machine(sid).await;
            if m["status"] == want {
                return m;
            }
            self.clock.advance(Duration::from_millis(50));
        }
        panic!("{sid} never reached status {want}");
    }

    /// The first machine, commissioned to Ready.
    async fn ready_machine(&self) -> String {
        let (_, ms, _) = self.get("machines/").await;
        let sid = ms[0]["system_id"].as_str().expect("sid").to_string();
        let (s, _, t) = self
            .post(&format!("machines/{sid}/"), Some("commission"), &[])
            .await;
        assert_eq!(s, 200, "{t}");
        self.wait_status(&sid, 4).await;
        sid
    }

    /// The machine's block device `name`.
    async fn device(&self, sid: &str, name: &str) -> Value {
        let (s, v, t) = self.get(&format!("nodes/{sid}/blockdevices/{name}/")).await;
        assert_eq!(s, 200, "{t}");
        v
    }

    /// One partition of all the free space on `device`; its id.
    async fn partition_all(&self, sid: &str, device: u64) -> u64 {
        let (s, p, t) = self
            .post(
                &format!("nodes/{sid}/blockdevices/{device}/partitions/"),
                None,
                &[],
            )
            .await;
        assert_eq!(s, 200, "{t}");
        p["id"].as_u64().expect("partition id")
    }
}

fn id_of(v: &Value) -> u64 {
    v["id"].as_u64().expect("id")
}

fn by_name<'a>(devices: &'a Value, name: &str) -> &'a Value {
    devices
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {devices}"))
}

/// A commissioned machine has MAAS's flat layout on its boot disk; after
/// `set_storage_layout blank`, partitions on sda and sdb make a RAID-1 `md0`,
/// formatted ext4 and mounted at `/`, and one `GET /machines/` shows all of it:
/// the RAID references in `raids`, `md0` (with its filesystem) in
/// `blockdevice_set`/`virtualblockdevice_set`, and each member partition (with its
/// disk's `device_id`) used for the RAID. Then the machine deploys.
#[tokio::test]
async fn a_raid1_root_is_built_listed_and_deployed() {
    let twin = start(opts(vec![seed_machine(1)], None)).await;
    let c = Maas::new(&twin);

    // Seed disks, as commissioning reports them: models and MAAS's tags by kind.
    let (_, ms, _) = c.get("machines/").await;
    let sid = ms[0]["system_id"].as_str().expect("sid").to_string();
    let (s, devs, t) = c.get(&format!("nodes/{sid}/blockdevices/")).await;
    assert_eq!(s, 200, "{t}");
    let names: Vec<&str> = devs
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, ["sda", "sdb", "nvme0n1", "sdc"]);
    assert_eq!(by_name(&devs, "sda")["tags"], json!(["ssd", "sata"]));
    assert_eq!(by_name(&devs, "nvme0n1")["tags"], json!(["ssd"]));
    assert_eq!(by_name(&devs, "nvme0n1")["model"], "TWIN-NVME");
    assert_eq!(
        by_name(&devs, "sdc")["tags"],
        json!(["rotary", "7200rpm", "sata"])
    );
    assert_eq!(by_name(&devs, "sdc")["size"], 4000 * GB);
    assert_eq!(
        by_name(&devs, "sda")["used_for"],
        "Unused",
        "no layout before commissioning"
    );

    // Commissioning ends with the flat layout on the boot disk (sda).
    c.ready_machine().await;
    let sda = c.device(&sid, "sda").await;
    assert_eq!(sda["used_for"], "GPT partitioned with 2 partitions");
    assert_eq!(sda["partition_table_type"], "GPT");
    let parts = sda["partitions"].as_array().expect("partitions");
    assert_eq!(parts[0]["size"], 512 * MIB);
    assert_eq!(parts[0]["bootable"], true);
    assert_eq!(parts[0]["path"], "/dev/disk/by-dname/sda-part1");
    assert_eq!(
        parts[0]["filesystem"],
        json!({"fstype": "fat32", "label": "efi", "uuid": parts[0]["filesystem"]["uuid"], "mount_point": "/boot/efi", "mount_options": null})
    );
    let root_size = (480 * GB - 512 * MIB - 5 * MIB) / (4 * MIB) * (4 * MIB);
    assert_eq!(parts[1]["size"], root_size);
    assert_eq!(
        parts[1]["used_for"],
        "ext4 formatted filesystem mounted at /"
    );
    assert_eq!(sda["available_size"], 0);
    assert_eq!(c.machine(&sid).await["boot_disk"]["name"], "sda");

    // Clear it, then partition sda and sdb.
    let (s, m, t) = c
        .post(
            &format!("machines/{sid}/"),
            Some("set_storage_layout"),
            &[("storage_layout", "blank")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(m["blockdevice_set"][0]["used_for"], "Unused");
    let sda_id = id_of(&c.device(&sid, "sda").await);
    let sdb_id = id_of(&c.device(&sid, "sdb").await);
    let p1 = c.partition_all(&sid, sda_id).await;
    let p2 = c.partition_all(&sid, sdb_id).await;
    let (s, part, t) = c
        .get(&format!(
            "nodes/{sid}/blockdevices/{sdb_id}/partition/sdb-part1"
        ))
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(part["id"], p2);
    assert_eq!(part["size"], (480 * GB - 5 * MIB) / (4 * MIB) * (4 * MIB));
    assert_eq!(part["device_id"], sdb_id);
    assert_eq!(part["type"], "partition");
    assert!(
        part["resource_uri"]
            .as_str()
            .expect("uri")
            .ends_with(&format!(
                "/nodes/{sid}/blockdevices/{sdb_id}/partition/{p2}"
            ))
    );
    // MAAS's route also answers as `partitions/{id}`.
    let (s, _, t) = c
        .get(&format!(
            "nodes/{sid}/blockdevices/{sdb_id}/partitions/{p2}"
        ))
        .await;
    assert_eq!(s, 200, "{t}");

    // RAID-1 md0 over the two partitions (one by id, one by name).
    let p1s = p1.to_string();
    let (s, raid, t) = c
        .post(
            &format!("nodes/{sid}/raids/"),
            None,
            &[
                ("name", "md0"),
                ("level", "raid-1"),
                ("partitions", &p1s),
                ("partitions", "sdb-part1"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let raid_id = id_of(&raid);
    assert_eq!(raid["level"], "raid-1");
    assert_eq!(raid["name"], "md0");
    assert_eq!(
        raid["size"],
        part["size"].as_u64().expect("size") - 128 * 1024
    );
    assert_eq!(raid["spare_devices"], json!([]));
    let members: Vec<(u64, u64, &str)> = raid["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| {
            (
                id_of(d),
                d["device_id"].as_u64().expect("device_id"),
                d["type"].as_str().expect("type"),
            )
        })
        .collect();
    assert_eq!(
        members,
        [(p1, sda_id, "partition"), (p2, sdb_id, "partition")]
    );
    let md0 = &raid["virtual_device"];
    assert_eq!(
        (md0["name"].clone(), md0["type"].clone()),
        (json!("md0"), json!("virtual"))
    );
    assert_eq!(md0["size"], raid["size"]);
    let md0_id = id_of(md0);
    assert!(md0_id != sda_id && md0_id != sdb_id);

    // Format md0 ext4 and mount it at /.
    let (s, dev, t) = c
        .post(
            &format!("nodes/{sid}/blockdevices/{md0_id}/"),
            Some("format"),
            &[("fstype", "ext4"), ("label", "root")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(dev["used_for"], "Unmounted ext4 formatted filesystem");
    let (s, dev, t) = c
        .post(
            &format!("nodes/{sid}/blockdevices/{md0_id}/"),
            Some("mount"),
            &[("mount_point", "/")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(dev["filesystem"]["mount_point"], "/");
    assert_eq!(dev["filesystem"]["mount_options"], "");

    // One list call tells it all.
    let (s, all, t) = c.get("machines/").await;
    assert_eq!(s, 200, "{t}");
    let m = all
        .as_array()
        .expect("machines")
        .iter()
        .find(|m| m["system_id"] == sid.as_str())
        .expect("machine");
    assert_eq!(
        m["raids"],
        json!([{"system_id": sid, "id": raid_id, "__incomplete__": true}])
    );
    let bds = &m["blockdevice_set"];
    let md0 = by_name(bds, "md0");
    assert_eq!(md0["type"], "virtual");
    assert_eq!(md0["filesystem"]["fstype"], "ext4");
    assert_eq!(md0["filesystem"]["label"], "root");
    assert_eq!(md0["used_for"], "ext4 formatted filesystem mounted at /");
    assert_eq!(md0["path"], "/dev/disk/by-dname/md0");
    for (disk, disk_id) in [("sda", sda_id), ("sdb", sdb_id)] {
        let p = &by_name(bds, disk)["partitions"][0];
        assert_eq!(p["device_id"], disk_id);
        assert_eq!(p["used_for"], "Active raid-1 device for md0");
        assert_eq!(p["filesystem"]["fstype"], "raid");
    }
    assert_eq!(
        m["virtualblockdevice_set"]
            .as_array()
            .expect("virtual")
            .len(),
        1
    );
    assert_eq!(
        m["physicalblockdevice_set"]
            .as_array()
            .expect("physical")
            .len(),
        4
    );
    assert_eq!(m["boot_disk"]["name"], "sda");

    // The RAID endpoints.
    let (s, raids, _) = c.get(&format!("nodes/{sid}/raids/")).await;
    assert_eq!(s, 200);
    assert_eq!(raids.as_array().map(Vec::len), Some(1));
    let (s, one, _) = c.get(&format!("nodes/{sid}/raid/{raid_id}/")).await;
    assert_eq!(s, 200);
    assert_eq!(one["virtual_device"]["filesystem"]["mount_point"], "/");
    assert_eq!(one["human_size"], "480.0 GB");

    // MAAS deploys a machine whose `/` is mounted.
    let (s, _, t) = c
        .post(&format!("machines/{sid}/"), Some("deploy"), &[])
        .await;
    assert_eq!(s, 200, "{t}");
    let m = c.wait_status(&sid, 6).await;
    assert_eq!(
        by_name(&m["blockdevice_set"], "md0")["filesystem"]["mount_point"],
        "/"
    );
    twin.shutdown().await.expect("shutdown");
}

/// What MAAS refuses, in its shapes: 409 for the machine's state, form errors as
/// `{"field": [...]}` (`__all__` for the form), other refusals as plain text.
#[tokio::test]
async fn storage_refusals() {
    let twin = start(opts(vec![seed_machine(1), seed_machine(2)], None)).await;
    let c = Maas::new(&twin);
    let sid = c.ready_machine().await;
    let sda_id = id_of(&c.device(&sid, "sda").await);
    let sdb_id = id_of(&c.device(&sid, "sdb").await);
    let nvme_id = id_of(&c.device(&sid, "nvme0n1").await);
    let bd = |id: u64| format!("nodes/{sid}/blockdevices/{id}/");
    let raids = format!("nodes/{sid}/raids/");

    // Formatting a partitioned disk.
    let (s, v, _) = c
        .post(&bd(sda_id), Some("format"), &[("fstype", "ext4")])
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!({"__all__": ["Cannot format block device with a partition table."]})
    );
    // A bad fstype, a missing one.
    let (s, v, _) = c
        .post(&bd(sdb_id), Some("format"), &[("fstype", "ntfs")])
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!({"fstype": ["Select a valid choice. ntfs is not one of the available choices."]})
    );
    let (s, v, _) = c.post(&bd(sdb_id), Some("format"), &[]).await;
    assert_eq!(
        (s, v),
        (400, json!({"fstype": ["This field is required."]}))
    );
    // Mounting an unformatted device.
    let (s, v, _) = c
        .post(&bd(sdb_id), Some("mount"), &[("mount_point", "/srv")])
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!({"__all__": ["Cannot mount an unformatted partition or block device."]})
    );
    // A partition bigger than the disk, and one bigger than its free space.
    let parts = format!("nodes/{sid}/blockdevices/{sdb_id}/partitions/");
    let (s, v, _) = c.post(&parts, None, &[("size", "10T")]).await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!({"size": [format!("Ensure this value is less than or equal to {}.", 480 * GB)]})
    );
    let whole = (480 * GB).to_string();
    let (s, v, _) = c.post(&parts, None, &[("size", &whole)]).await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!({"size": ["Partition cannot be saved; not enough free space on the block device."]})
    );
    // RAID-5 with two devices; an unknown level; a member already in use.
    let nvme = nvme_id.to_string();
    let sdb = sdb_id.to_string();
    let (s, v, _) = c
        .post(
            &raids,
            None,
            &[
                ("name", "md0"),
                ("level", "raid-5"),
                ("block_devices", &sdb),
                ("block_devices", &nvme),
            ],
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!({"__all__": ["RAID level 5 must have at least 3 raid devices and any number of spares."]})
    );
    let (s, v, _) = c
        .post(
            &raids,
            None,
            &[
                ("name", "md0"),
                ("level", "raid-7"),
                ("block_devices", &sdb),
                ("block_devices", &nvme),
            ],
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!({"level": ["Select a valid choice. raid-7 is not one of the available choices."]})
    );
    let (s, v, _) = c
        .post(
            &raids,
            None,
            &[
                ("name", "md0"),
                ("level", "raid-1"),
                ("block_devices", "sda"),
                ("block_devices", &nvme),
            ],
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!({"block_devices": ["Select a valid choice. sda is not one of the available choices."]})
    );
    let (s, v, _) = c
        .post(
            &raids,
            None,
            &[
                ("name", "md0"),
                ("level", "raid-1"),
                ("partitions", "sda-part2"),
            ],
        )
        .await;
    assert_eq!(s, 400, "a formatted partition is in use");
    assert_eq!(
        v,
        json!({"partitions": ["Select a valid choice. sda-part2 is not one of the available choices."]})
    );
    // A RAID-0 of two whole disks works; its members are then taken.
    let (s, r0, t) = c
        .post(
            &raids,
            None,
            &[
                ("name", "md9"),
                ("level", "raid-0"),
                ("block_devices", &sdb),
                ("block_devices", &nvme),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(r0["size"], 480 * GB + 960 * GB - 2 * 128 * 1024);
    let (s, _, t) = c
        .post(&bd(sdb_id), Some("format"), &[("fstype", "ext4")])
        .await;
    assert_eq!(
        (s, t.as_str()),
        (
            400,
            "Cannot format a block device that has a filesystem type of raid."
        )
    );
    let md9 = id_of(&r0["virtual_device"]);
    let (s, _, t) = c.post(&bd(md9), Some("set_boot_disk"), &[]).await;
    assert_eq!(
        (s, t.as_str()),
        (400, "Cannot set a virtual block device as the boot disk.")
    );
    let (s, _, _) = c.delete(&format!("nodes/{sid}/raid/{}/", id_of(&r0))).await;
    assert_eq!(s, 204);
    assert_eq!(
        c.device(&sid, "sdb").await["used_for"],
        "Unused",
        "members freed"
    );
    // Unformatting a mounted filesystem.
    let root = c.device(&sid, "sda").await["partitions"][1]["id"]
        .as_u64()
        .expect("root");
    let (s, _, t) = c
        .post(
            &format!("nodes/{sid}/blockdevices/{sda_id}/partition/{root}"),
            Some("unformat"),
            &[],
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        t.starts_with("Filesystem is mounted and cannot be unformatted."),
        "{t}"
    );
    // Layouts: unknown, missing.
    let m = format!("machines/{sid}/");
    let (s, v, _) = c
        .post(&m, Some("set_storage_layout"), &[("storage_layout", "zfs")])
        .await;
    assert_eq!(s, 400);
    assert!(
        v["storage_layout"][0]
            .as_str()
            .is_some_and(|e| e.starts_with("'zfs' is not a valid storage_layout."))
    );
    let (s, v, _) = c.post(&m, Some("set_storage_layout"), &[]).await;
    assert_eq!(
        (s, v),
        (400, json!({"storage_layout": ["This field is required."]}))
    );
    // The boot disk takes no filesystem directly.
    c.post(
        &m,
        Some("set_storage_layout"),
        &[("storage_layout", "blank")],
    )
    .await;
    let (s, v, _) = c
        .post(&bd(sda_id), Some("format"), &[("fstype", "ext4")])
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!({"__all__": ["Cannot place filesystem directly on the boot disk. Create a partition on the boot disk first and then format the partition."]})
    );
    // No deploy without `/`, and the refused deploy leaves the machine Ready.
    let (s, v, _) = c.post(&m, Some("deploy"), &[]).await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!({"storage": ["Mount the root '/' filesystem to be able to deploy this node."]})
    );
    assert_eq!(c.machine(&sid).await["status"], 4);
    c.post(
        &m,
        Some("set_storage_layout"),
        &[("storage_layout", "flat")],
    )
    .await;

    // Allocated: no new partitions or RAIDs, but format/mount work, on the copies
    // MAAS makes at allocation (gone again at release).
    let (s, _, t) = c
        .post("machines/", Some("allocate"), &[("system_id", &sid)])
        .await;
    assert_eq!(s, 200, "{t}");
    let (s, _, t) = c
        .post(
            &raids,
            None,
            &[
                ("name", "md0"),
                ("level", "raid-1"),
                ("block_devices", &sdb),
                ("block_devices", &nvme),
            ],
        )
        .await;
    assert_eq!(
        (s, t.as_str()),
        (409, "Cannot create RAID because the machine is not Ready.")
    );
    let (s, _, t) = c.post(&parts, None, &[]).await;
    assert_eq!(
        (s, t.as_str()),
        (
            409,
            "Cannot create partition because the node is not Ready."
        )
    );
    let (s, _, t) = c
        .post(
            &m,
            Some("set_storage_layout"),
            &[("storage_layout", "blank")],
        )
        .await;
    assert_eq!(
        (s, t.as_str()),
        (
            409,
            "Cannot change the storage layout on a machine that is not Ready."
        )
    );
    let root = c.device(&sid, "sda").await["partitions"][1]["id"]
        .as_u64()
        .expect("root");
    let root_uri = format!("nodes/{sid}/blockdevices/{sda_id}/partition/{root}");
    let (s, p, t) = c.post(&root_uri, Some("unmount"), &[]).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(p["used_for"], "Unmounted ext4 formatted filesystem");
    let (s, _, _) = c
        .post(&bd(sdb_id), Some("format"), &[("fstype", "xfs")])
        .await;
    assert_eq!(s, 200, "formatting works on an Allocated machine");
    let (s, _, _) = c.post(&m, Some("release"), &[]).await;
    assert_eq!(s, 200);
    c.wait_status(&sid, 4).await;
    let (_, p, _) = c.get(&root_uri).await;
    assert_eq!(
        p["used_for"], "ext4 formatted filesystem mounted at /",
        "release drops the acquired copies"
    );
    assert_eq!(c.device(&sid, "sdb").await["used_for"], "Unused");

    // Deployed: nothing changes.
    let (s, _, t) = c.post(&m, Some("deploy"), &[]).await;
    assert_eq!(s, 200, "{t}");
    c.wait_status(&sid, 6).await;
    let (s, _, t) = c
        .post(
            &raids,
            None,
            &[
                ("name", "md0"),
                ("level", "raid-1"),
                ("block_devices", &sdb),
                ("block_devices", &nvme),
            ],
        )
        .await;
    assert_eq!(
        (s, t.as_str()),
        (409, "Cannot create RAID because the machine is not Ready.")
    );
    let (s, _, t) = c.post(&parts, None, &[]).await;
    assert_eq!(
        (s, t.as_str()),
        (
            409,
            "Cannot create partition because the node is not Ready."
        )
    );
    let (s, _, t) = c
        .post(&bd(sdb_id), Some("format"), &[("fstype", "ext4")])
        .await;
    assert_eq!(
        (s, t.as_str()),
        (
            409,
            "Cannot format block device because the machine is not Ready or Allocated."
        )
    );
    twin.shutdown().await.expect("shutdown");
}

/// A machine created already deployed (`deployed=true`) was never commissioned:
/// MAAS knows no disks for it, so no storage, no boot disk and no RAIDs.
#[tokio::test]
async fn a_machine_created_deployed_has_no_storage() {
    let twin = start(opts(vec![], None)).await;
    let c = Maas::new(&twin);
    let (s, m, t) = c
        .post(
            "machines/",
            None,
            &[
                ("mac_addresses", "52:54:00:99:00:01"),
                ("architecture", "amd64/generic"),
                ("power_type", "manual"),
                ("deployed", "true"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(m["status_name"], "Deployed");
    assert_eq!(m["blockdevice_set"], json!([]));
    assert_eq!(m["boot_disk"], Value::Null);
    assert_eq!(m["raids"], json!([]));
    twin.shutdown().await.expect("shutdown");
}

/// Partitions, RAIDs and filesystems are part of the saved state.
#[tokio::test]
async fn storage_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("state.json");
    let twin = start(opts(vec![seed_machine(1)], Some(state.clone()))).await;
    let c = Maas::new(&twin);
    let sid = c.ready_machine().await;
    let sdb = id_of(&c.device(&sid, "sdb").await).to_string();
    let nvme = id_of(&c.device(&sid, "nvme0n1").await).to_string();
    let (s, raid, t) = c
        .post(
            &format!("nodes/{sid}/raids/"),
            None,
            &[
                ("name", "md1"),
                ("level", "raid-1"),
                ("block_devices", &sdb),
                ("block_devices", &nvme),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let before = c.machine(&sid).await;
    twin.shutdown().await.expect("shutdown");

    let twin = start(opts(vec![seed_machine(1)], Some(state))).await;
    let c = Maas::new(&twin);
    let after = c.machine(&sid).await;
    assert_eq!(after["blockdevice_set"], before["blockdevice_set"]);
    assert_eq!(after["raids"][0]["id"], raid["id"]);
    // Ids keep coming from where they were: a new partition does not reuse one.
    let sdc = id_of(&c.device(&sid, "sdc").await);
    let (s, p, t) = c
        .post(
            &format!("nodes/{sid}/blockdevices/{sdc}/partitions/"),
            None,
            &[("size", "100G")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let taken: Vec<u64> = before["blockdevice_set"]
        .as_array()
        .expect("devices")
        .iter()
        .flat_map(|d| d["partitions"].as_array().cloned().unwrap_or_default())
        .map(|p| id_of(&p))
        .collect();
    assert!(!taken.contains(&id_of(&p)), "{taken:?} {p}");
    assert_eq!(p["size"], 100 * GB / (4 * MIB) * (4 * MIB));
    twin.shutdown().await.expect("shutdown");
}

/// Commissioning starts from blank storage and ends with the default layout, unless
/// asked to `skip_storage`; `restore_storage_configuration` applies the default
/// layout again.
#[tokio::test]
async fn commissioning_resets_storage_unless_told_to_skip_it() {
    let twin = start(opts(vec![seed_machine(1)], None)).await;
    let c = Maas::new(&twin);
    let sid = c.ready_machine().await;
    let sdb = id_of(&c.device(&sid, "sdb").await);
    c.partition_all(&sid, sdb).await;
    let m = format!("machines/{sid}/");
    let (s, _, t) = c
        .post(&m, Some("commission"), &[("skip_storage", "true")])
        .await;
    assert_eq!(s, 200, "{t}");
    c.wait_status(&sid, 4).await;
    assert_eq!(
        c.device(&sid, "sdb").await["used_for"],
        "GPT partitioned with 1 partition",
        "kept"
    );
    let (s, _, t) = c.post(&m, Some("commission"), &[]).await;
    assert_eq!(s, 200, "{t}");
    c.wait_status(&sid, 4).await;
    assert_eq!(c.device(&sid, "sdb").await["used_for"], "Unused");
    assert_eq!(
        c.device(&sid, "sda").await["used_for"],
        "GPT partitioned with 2 partitions"
    );
    c.post(
        &m,
        Some("set_storage_layout"),
        &[("storage_layout", "blank")],
    )
    .await;
    let (s, v, t) = c.post(&m, Some("restore_storage_configuration"), &[]).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        by_name(&v["blockdevice_set"], "sda")["partitions"][1]["filesystem"]["mount_point"],
        "/"
    );
    twin.shutdown().await.expect("shutdown");
}
