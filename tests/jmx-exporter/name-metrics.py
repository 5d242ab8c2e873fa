#!/usr/bin/env python3
"""Name MBean attributes the way the Prometheus JMX exporter does with a rules file.

Usage: name-metrics.py RULES.yml < samples

Each sample line is an attribute in the exporter's match format,
`domain<key=value, ...><>attribute: value`. For each, print the first matching rule's
metric name and labels (`name{k="v",...}`), or `UNMATCHED`. Mirrors the exporter: a
pattern P is compiled as `^.*(?:P).*$` and must match the whole line, `$n` in name and
labels take the groups, `lowercaseOutputName`/`lowercaseOutputLabelNames` apply, and
names keep only [a-zA-Z0-9:_] (anything else becomes `_`, runs of `_` collapse). Java's
and Python's regex dialects agree on what these rules use. tests/it/metrics.rs runs it
on the shipped packaging/jmx-exporter/ksqldb.yml.
"""
import re
import sys

import yaml


def safe(name):
    out = re.sub(r"[^a-zA-Z0-9:_]", "_", name)
    return re.sub(r"__+", "_", out)


def expand(template, match):
    return re.sub(r"\$(\d+)", lambda m: match.group(int(m.group(1))) or "", str(template))


def main():
    with open(sys.argv[1]) as f:
        config = yaml.safe_load(f)
    for key in ("includeObjectNames", "excludeObjectNames", "rules"):
        assert key in config, f"{key} missing"
    rules = [(re.compile("^.*(?:" + r["pattern"] + ").*$"), r) for r in config["rules"]]
    lower_name = config.get("lowercaseOutputName", False)
    lower_labels = config.get("lowercaseOutputLabelNames", False)
    for line in sys.stdin.read().splitlines():
        if not line.strip():
            continue
        for pattern, rule in rules:
            m = pattern.match(line)
            if not m:
                continue
            name = safe(expand(rule["name"], m))
            if lower_name:
                name = name.lower()
            labels = []
            for k, v in (rule.get("labels") or {}).items():
                k = safe(expand(k, m))
                if lower_labels:
                    k = k.lower()
                labels.append(f'{k}="{expand(v, m)}"')
            print(name + ("{" + ",".join(labels) + "}" if labels else ""))
            break
        else:
            print("UNMATCHED")


main()
