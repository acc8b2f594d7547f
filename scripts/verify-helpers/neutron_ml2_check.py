#!/usr/bin/env python3
"""Validate a Neutron ml2_conf.ini override.

Usage: neutron_ml2_check.py FILE

Run by the `strata-verify` crate for files of kind `neutron-ml2`. Standard library only.

What is checked (exit status 0 when all hold, 1 otherwise, one message per problem):

* The file parses with python's configparser in strict mode (no duplicate sections
  or options, no option outside a section), interpolation off, as oslo.config would
  read the single-valued options it sets.
* `[ml2_type_vlan] network_vlan_ranges`, when present, is what neutron-lib's
  `plugins/utils.py` `parse_network_vlan_ranges` accepts (neutron-server refuses to
  start otherwise): comma-separated `physnet` or `physnet:min:max` entries, the
  bounds integers with 1 <= min <= max <= 4094, the physnet a non-empty name without
  spaces.
* `[ml2_type_flat] flat_networks`, when present, is `*` or comma-separated physnet
  names.
* At least one of the two is set: an override that sets neither changes nothing.
"""

import configparser
import re
import sys

PHYSNET = re.compile(r"^[^\s:,]+$")


def vlan_ranges(value, errors):
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if not entries:
        errors.append("[ml2_type_vlan] network_vlan_ranges is empty: no physnet allows VLAN networks")
    for entry in entries:
        parts = entry.split(":")
        if not PHYSNET.match(parts[0]):
            errors.append("network_vlan_ranges: %r is not a physnet name" % parts[0])
            continue
        if len(parts) == 1:
            continue
        if len(parts) != 3:
            errors.append("network_vlan_ranges: %r is not physnet or physnet:min:max" % entry)
            continue
        try:
            low, high = int(parts[1]), int(parts[2])
        except ValueError:
            errors.append("network_vlan_ranges: %r: the bounds must be integers" % entry)
            continue
        if not (1 <= low <= 4094 and 1 <= high <= 4094):
            errors.append("network_vlan_ranges: %r: VLAN ids lie in 1-4094" % entry)
        elif low > high:
            errors.append("network_vlan_ranges: %r: the range ends before it starts" % entry)


def flat_networks(value, errors):
    names = [n.strip() for n in value.split(",") if n.strip()]
    if names == ["*"]:
        return
    for name in names:
        if not PHYSNET.match(name):
            errors.append("flat_networks: %r is not a physnet name" % name)


def check(path, text):
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        return ["%s: %s" % (path, exc)]
    errors = []
    found = False
    if parser.has_option("ml2_type_vlan", "network_vlan_ranges"):
        found = True
        vlan_ranges(parser.get("ml2_type_vlan", "network_vlan_ranges"), errors)
    if parser.has_option("ml2_type_flat", "flat_networks"):
        found = True
        flat_networks(parser.get("ml2_type_flat", "flat_networks"), errors)
    if not found:
        errors.append("neither [ml2_type_vlan] network_vlan_ranges nor [ml2_type_flat] flat_networks is set")
    return ["%s: %s" % (path, e) if not e.startswith(path) else e for e in errors]


def main(argv):
    if len(argv) != 2:
        print("usage: neutron_ml2_check.py FILE", file=sys.stderr)
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
    print("%s: ML2 override valid" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
