#!/usr/bin/env python3
"""Validate a nova.conf fragment that configures PCI passthrough.

Usage: nova_pci_check.py FILE

Run by the `strata-verify` crate for files of kind `nova-pci`. Standard library only,
so any python3 >= 3.8 works (the strata-tools venv or the system interpreter).

What is checked (exit status 0 when all hold, 1 otherwise, one message per problem):

* The file parses the way oslo.config reads nova.conf: `[section]` headers,
  `key = value` (or `key: value`), indented continuation lines, `#`/`;` comment
  lines, surrounding matching quotes stripped from values, and repeated keys
  collecting into a list (that is how the multi-valued options `device_spec` and
  `alias` are written: one line per value).
* There is a `[pci]` section with at least one `device_spec` or `alias`, unless the
  file switches the quota driver (a region without GPUs on unified limits).
* `[quota] driver`, when present, is one of nova's drivers; with
  `nova.quota.UnifiedLimitsDriver` the `[oslo_limit]` section says whose limits to
  read (`endpoint_id`, or `endpoint_service_type`) and how to authenticate
  (`auth_url`, `auth_type`, `username`, a user domain, and one scope).
  `[filter_scheduler] pci_in_placement` and `[pci] report_in_placement`, when
  present, are booleans as oslo.config reads them.
* Every `device_spec` value is JSON: an object, or a list of objects (nova accepts
  both). Each object has `vendor_id` and `product_id`, each four hex digits.
  (Nova itself also accepts "*" or an address/devname-only spec; strata always
  emits explicit ids, so anything else is reported.) Other keys are tags and are
  allowed, but must be strings.
* Every `alias` value is one JSON object with `name`, `vendor_id`, `product_id`
  (four hex digits) and `device_type` in type-PCI/type-PF/type-VF; `numa_policy`,
  when present, is one of nova's policies; no keys beyond those nova's alias
  schema allows; aliases that share a name agree on device_type and numa_policy.
* The deprecated `passthrough_whitelist` name is reported (use `device_spec`).
* `[compute] cpu_shared_set` and `cpu_dedicated_set`, when present, parse as nova's
  `parse_cpu_spec` does (ids, `a-b` ranges, `^n` exclusions, comma-separated), are
  not empty and do not overlap (nova-compute refuses to start when they do);
  `[DEFAULT] reserved_host_memory_mb`, when present, is a non-negative integer.
"""

import json
import re
import sys

HEX4 = re.compile(r"^[0-9a-fA-F]{4}$")
DEVICE_TYPES = ("type-PCI", "type-PF", "type-VF")
NUMA_POLICIES = ("required", "legacy", "preferred", "socket")
# Keys nova's alias JSON schema allows (it sets additionalProperties: false).
ALIAS_KEYS = {
    "name",
    "capability_type",
    "product_id",
    "vendor_id",
    "device_type",
    "numa_policy",
    "resource_class",
    "traits",
    "live_migratable",
}
MULTI_VALUED = ("device_spec", "alias", "passthrough_whitelist")


class ParseError(Exception):
    pass


def strip_quotes(value):
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_ini(text):
    """Parse oslo.config-style INI into {section: [(key, value, line_no)]}."""
    sections = {}
    current = None
    last = None  # (section, index) of the last assignment, for continuation lines
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped:
            last = None
            continue
        if stripped[0] in "#;":
            continue
        if line[0] in " \t":
            if last is None:
                raise ParseError("line %d: continuation line without a value before it" % line_no)
            section, index = last
            key, value, start = sections[section][index]
            sections[section][index] = (key, value + "\n" + stripped, start)
            continue
        if stripped.startswith("["):
            if not stripped.endswith("]") or len(stripped) < 3:
                raise ParseError("line %d: invalid section header %r" % (line_no, stripped))
            current = stripped[1:-1].strip()
            if not current:
                raise ParseError("line %d: empty section name" % line_no)
            sections.setdefault(current, [])
            last = None
            continue
        if current is None:
            raise ParseError("line %d: assignment before any [section] header" % line_no)
        match = re.match(r"^([^=:\s][^=:]*?)\s*[=:]\s*(.*)$", stripped)
        if not match:
            raise ParseError("line %d: expected 'key = value', got %r" % (line_no, stripped))
        key, value = match.group(1), match.group(2)
        sections[current].append((key, value, line_no))
        last = (current, len(sections[current]) - 1)
    return {
        name: [(key, strip_quotes(value.strip()), line_no) for key, value, line_no in entries]
        for name, entries in sections.items()
    }


def check_hex_ids(where, obj, errors):
    for key in ("vendor_id", "product_id"):
        if key not in obj:
            errors.append("%s: missing required key %r" % (where, key))
            continue
        value = obj[key]
        if not isinstance(value, str) or not HEX4.match(value):
            errors.append("%s: %s must be a string of 4 hex digits, got %s" % (where, key, json.dumps(value)))


def load_json(where, value, errors):
    try:
        return json.loads(value)
    except ValueError as exc:
        errors.append("%s: value is not valid JSON (%s): %s" % (where, exc, value))
        return None


def check_device_spec(where, value, errors):
    spec = load_json(where, value, errors)
    if spec is None:
        return
    if isinstance(spec, dict):
        specs = [spec]
    elif isinstance(spec, list) and spec:
        specs = spec
    else:
        errors.append("%s: expected a JSON object (or a non-empty list of objects), got %s" % (where, json.dumps(spec)))
        return
    for index, item in enumerate(specs):
        item_where = where if len(specs) == 1 else "%s[%d]" % (where, index)
        if not isinstance(item, dict):
            errors.append("%s: expected a JSON object, got %s" % (item_where, json.dumps(item)))
            continue
        check_hex_ids(item_where, item, errors)
        for key, tag in item.items():
            if key == "address" and isinstance(tag, dict):
                continue
            if not isinstance(tag, str):
                errors.append("%s: value of %r must be a string, got %s" % (item_where, key, json.dumps(tag)))


def check_alias(where, value, errors, seen):
    alias = load_json(where, value, errors)
    if alias is None:
        return
    if not isinstance(alias, dict):
        errors.append("%s: expected a JSON object, got %s" % (where, json.dumps(alias)))
        return
    unknown = sorted(set(alias) - ALIAS_KEYS)
    if unknown:
        errors.append("%s: keys not allowed in a PCI alias: %s" % (where, ", ".join(unknown)))
    name = alias.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        errors.append("%s: 'name' must be a non-empty string of at most 256 characters" % where)
        name = None
    check_hex_ids(where, alias, errors)
    device_type = alias.get("device_type")
    if device_type not in DEVICE_TYPES:
        errors.append(
            "%s: 'device_type' must be one of %s, got %s"
            % (where, ", ".join(DEVICE_TYPES), json.dumps(device_type))
        )
    numa_policy = alias.get("numa_policy", "legacy")
    if numa_policy not in NUMA_POLICIES:
        errors.append(
            "%s: 'numa_policy' must be one of %s, got %s"
            % (where, ", ".join(NUMA_POLICIES), json.dumps(numa_policy))
        )
    for key in ("capability_type", "resource_class", "traits", "live_migratable"):
        if key in alias and not isinstance(alias[key], str):
            errors.append("%s: %r must be a string" % (where, key))
    if name is not None:
        name = name.strip()
        previous = seen.get(name)
        if previous is None:
            seen[name] = (device_type, numa_policy, where)
        else:
            if previous[0] != device_type:
                errors.append("%s: device_type mismatch for alias %r (see %s)" % (where, name, previous[2]))
            if previous[1] != numa_policy:
                errors.append("%s: numa_policy mismatch for alias %r (see %s)" % (where, name, previous[2]))


def cpu_spec(where, value, errors):
    cpus, excluded = set(), set()
    for part in [p.strip() for p in value.split(",") if p.strip()]:
        try:
            if part.startswith("^"):
                excluded.add(int(part[1:]))
            elif "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if low > high:
                    raise ValueError(part)
                cpus.update(range(low, high + 1))
            else:
                cpus.add(int(part))
        except ValueError:
            errors.append("%s: invalid range expression %r" % (where, value))
            return set()
    cpus -= excluded
    if not cpus:
        errors.append("%s: no CPU in %r" % (where, value))
    return cpus


def check_cpu_sets(path, sections, errors):
    sets = {}
    for key, value, line_no in sections.get("compute", []):
        if key in ("cpu_shared_set", "cpu_dedicated_set"):
            sets[key] = cpu_spec("%s:%d: %s" % (path, line_no, key), value, errors)
    both = sets.get("cpu_shared_set", set()) & sets.get("cpu_dedicated_set", set())
    if both:
        errors.append("%s: cpu_shared_set and cpu_dedicated_set overlap on CPUs %s" % (path, sorted(both)))
    for key, value, line_no in sections.get("DEFAULT", []):
        if key == "reserved_host_memory_mb" and not re.match(r"^[0-9]+$", value):
            errors.append("%s:%d: reserved_host_memory_mb must be a non-negative integer" % (path, line_no))


QUOTA_DRIVERS = (
    "nova.quota.DbQuotaDriver",
    "nova.quota.NoopQuotaDriver",
    "nova.quota.UnifiedLimitsDriver",
)
# The spellings oslo.config's Boolean type accepts.
BOOLEANS = ("true", "false", "1", "0", "yes", "no", "on", "off")


def last(sections, section, key):
    values = [v for k, v, _ in sections.get(section, []) if k == key]
    return values[-1] if values else None


def check_quota(path, sections, errors):
    driver = last(sections, "quota", "driver")
    if driver is None:
        return
    if driver not in QUOTA_DRIVERS:
        errors.append("%s: [quota] driver %r is not one of %s" % (path, driver, ", ".join(QUOTA_DRIVERS)))
        return
    if driver != "nova.quota.UnifiedLimitsDriver":
        return
    if "oslo_limit" not in sections:
        errors.append("%s: the unified-limits driver needs an [oslo_limit] section" % path)
        return
    if not last(sections, "oslo_limit", "endpoint_id") and not last(sections, "oslo_limit", "endpoint_service_type"):
        errors.append("%s: [oslo_limit] needs endpoint_id or endpoint_service_type" % path)
    for key in ("auth_url", "auth_type", "username", "password"):
        if not last(sections, "oslo_limit", key):
            errors.append("%s: [oslo_limit] %s is missing" % (path, key))
    if not (last(sections, "oslo_limit", "user_domain_id") or last(sections, "oslo_limit", "user_domain_name")):
        errors.append("%s: [oslo_limit] needs user_domain_id or user_domain_name" % path)
    scopes = [k for k in ("system_scope", "project_id", "project_name", "domain_id", "domain_name") if last(sections, "oslo_limit", k)]
    if len(scopes) != 1 and not (set(scopes) <= {"project_name", "project_id"} and scopes):
        errors.append("%s: [oslo_limit] needs exactly one scope (system_scope, a project or a domain), got %s" % (path, scopes or "none"))


def check(path, text):
    errors = []
    try:
        sections = parse_ini(text)
    except ParseError as exc:
        return ["%s: %s" % (path, exc)]
    check_quota(path, sections, errors)
    if "pci" not in sections:
        if "quota" in sections:
            return errors
        return ["%s: no [pci] section" % path]
    check_cpu_sets(path, sections, errors)
    for section, key in (("pci", "report_in_placement"), ("filter_scheduler", "pci_in_placement")):
        for k, value, line_no in sections.get(section, []):
            if k == key and value.lower() not in BOOLEANS:
                errors.append("%s:%d: [%s] %s must be a boolean, got %r" % (path, line_no, section, key, value))
    entries = sections["pci"]
    values = {key: [] for key in MULTI_VALUED}
    for key, value, line_no in entries:
        if key in values:
            values[key].append((value, line_no))
    for value, line_no in values["passthrough_whitelist"]:
        errors.append(
            "%s:%d: [pci] passthrough_whitelist is deprecated; use device_spec" % (path, line_no)
        )
    if not values["device_spec"] and not values["alias"]:
        errors.append("%s: [pci] has no device_spec and no alias" % path)
    for value, line_no in values["device_spec"]:
        check_device_spec("%s:%d: device_spec" % (path, line_no), value, errors)
    seen = {}
    for value, line_no in values["alias"]:
        check_alias("%s:%d: alias" % (path, line_no), value, errors, seen)
    return errors


def main(argv):
    if len(argv) != 2:
        print("usage: nova_pci_check.py FILE", file=sys.stderr)
        return 2
    path = argv[1]
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        print("%s: cannot read: %s" % (path, exc), file=sys.stderr)
        return 1
    errors = check(path, text)
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        return 1
    pci = parse_ini(text).get("pci", [])
    device_specs = sum(1 for key, _, _ in pci if key == "device_spec")
    aliases = sum(1 for key, _, _ in pci if key == "alias")
    print("%s: [pci] valid: %d device_spec, %d alias" % (path, device_specs, aliases))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
