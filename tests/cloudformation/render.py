#!/usr/bin/env python3
"""Render parts of deploy/cloudformation/ksql-msk.yaml the way CloudFormation would.

    render.py TEMPLATE PARAMS.json policy    -> the host role's ksql-msk policy document
    render.py TEMPLATE PARAMS.json userdata  -> the launch template's user data script

PARAMS.json holds the stack's parameters plus the pseudo parameters (AWS::Region, ...)
and the physical ids of resources that `Ref` reads (e.g. "Cluster": an MSK ARN).
The template is read with cfn-lint's own decoder (the YAML short forms `!Sub`, `!If`, ...
become their long forms); the intrinsic functions the template uses are evaluated here:
Ref, Fn::Sub (both forms), Fn::Select, Fn::Split, Fn::If, Fn::Join, Fn::Base64,
Fn::FindInMap, and conditions with Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition.
Anything else is an error, so the test cannot pass over a function it does not know.
"""
import base64
import json
import re
import sys

from cfnlint.decode import decode


class Renderer:
    def __init__(self, template, params):
        self.t = template
        self.params = params
        self.conds = {}

    def cond(self, name):
        if name not in self.conds:
            self.conds[name] = self.truth(self.t["Conditions"][name])
        return self.conds[name]

    def truth(self, c):
        (fn, arg), = c.items()
        if fn == "Fn::Equals":
            a, b = (self.eval(x) for x in arg)
            return a == b
        if fn == "Fn::Not":
            return not self.truth(arg[0])
        if fn == "Fn::And":
            return all(self.truth(x) for x in arg)
        if fn == "Fn::Or":
            return any(self.truth(x) for x in arg)
        if fn == "Condition":
            return self.cond(arg)
        raise SystemExit(f"render.py: condition function {fn} not supported")

    def ref(self, name):
        if name in self.params:
            return self.params[name]
        if name in self.t.get("Parameters", {}) and "Default" in self.t["Parameters"][name]:
            return str(self.t["Parameters"][name]["Default"])
        raise SystemExit(f"render.py: no value for Ref {name} in the parameters")

    def sub(self, text, names):
        def one(m):
            key = m.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in names:
                return names[key]
            return self.ref(key)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def eval(self, v):
        if isinstance(v, list):
            return [self.eval(x) for x in v]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (fn, arg), = v.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                names = {k: self.eval(x) for k, x in arg[1].items()}
                return self.sub(arg[0], names)
            if fn == "Fn::Select":
                return self.eval(arg[1])[int(self.eval(arg[0]))]
            if fn == "Fn::Split":
                return self.eval(arg[1]).split(arg[0])
            if fn == "Fn::Join":
                return arg[0].join(self.eval(arg[1]))
            if fn == "Fn::If":
                return self.eval(arg[1] if self.cond(arg[0]) else arg[2])
            if fn == "Fn::Base64":
                return base64.b64encode(self.eval(arg).encode()).decode()
            if fn == "Fn::FindInMap":
                m, k1, k2 = (self.eval(x) for x in arg)
                return self.t["Mappings"][m][k1][k2]
            if fn.startswith("Fn::") or fn == "Condition":
                raise SystemExit(f"render.py: intrinsic function {fn} not supported")
        return {k: self.eval(x) for k, x in v.items()}


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("policy", "userdata"):
        raise SystemExit("usage: render.py TEMPLATE PARAMS.json policy|userdata")
    template, matches = decode(sys.argv[1])
    if template is None:
        raise SystemExit(f"render.py: {sys.argv[1]}: {matches}")
    with open(sys.argv[2]) as f:
        params = json.load(f)
    r = Renderer(template, params)
    res = template["Resources"]
    if sys.argv[3] == "policy":
        (policy,) = [
            p for p in res["HostRole"]["Properties"]["Policies"] if p["PolicyName"] == "ksql-msk"
        ]
        print(json.dumps(r.eval(policy["PolicyDocument"]), indent=2))
    else:
        data = res["HostLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
        sys.stdout.write(base64.b64decode(r.eval(data)).decode())


if __name__ == "__main__":
    main()
