"""template.yaml as a stack would deploy it: parameters and conditions decided, intrinsic functions
evaluated (the ones the template uses), and the Deny statements of a resource policy evaluated for a
request, as IAM does: an explicit Deny that applies refuses the request whatever else allows it."""

import fnmatch
import re

ACCOUNT = "111122223333"
REGION = "us-east-1"
PARTITION = "aws"
STACK = "kms-replicator"
NO_VALUE = object()


class Stack:
    def __init__(self, template, parameters=None, name=STACK):
        self.template = template
        self.name = name
        self.parameters = {
            k: str(p.get("Default", "")) for k, p in template["Parameters"].items()
        }
        self.parameters.setdefault("AllowedRegions", "")
        if not self.parameters["AllowedRegions"]:
            self.parameters["AllowedRegions"] = "us-east-1 us-west-2"
        self.parameters.update(parameters or {})
        self.pseudo = {
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": PARTITION,
            "AWS::StackName": name,
            "AWS::NoValue": NO_VALUE,
        }

    # -- conditions and resources ---------------------------------------------------------
    def condition(self, name):
        return self.decide(self.template["Conditions"][name])

    def decide(self, node):
        (fn, arg), = node.items()
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            a, b = (self.resolve(v) for v in arg)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not self.decide(arg[0])
        if fn == "Fn::And":
            return all(self.decide(v) for v in arg)
        if fn == "Fn::Or":
            return any(self.decide(v) for v in arg)
        raise AssertionError(f"condition function {fn} is not modelled")

    def exists(self, logical_id):
        resource = self.template["Resources"][logical_id]
        return "Condition" not in resource or self.condition(resource["Condition"])

    def physical_name(self, logical_id):
        props = self.template["Resources"][logical_id].get("Properties", {})
        for key in ("Name", "RoleName", "QueueName"):
            if key in props:
                return self.resolve(props[key])
        return f"{self.name}-{logical_id}"

    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        assert self.exists(name), f"Ref {name}: the resource does not exist in this stack"
        ty = self.template["Resources"][name]["Type"]
        if ty == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.physical_name(name)}"
        return self.physical_name(name)

    def get_att(self, logical_id, attribute):
        assert self.exists(logical_id), f"GetAtt {logical_id}: the resource does not exist in this stack"
        resource = self.template["Resources"][logical_id]
        ty, name = resource["Type"], self.physical_name(logical_id)
        if (ty, attribute) == ("AWS::IAM::Role", "Arn"):
            path = self.resolve(resource["Properties"].get("Path", "/"))
            return f"arn:{PARTITION}:iam::{ACCOUNT}:role{path}{name}"
        if (ty, attribute) == ("AWS::SQS::Queue", "Arn"):
            return f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{name}"
        if (ty, attribute) == ("AWS::Events::EventBus", "Arn"):
            return f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:event-bus/{name}"
        if (ty, attribute) == ("AWS::Events::Rule", "Arn"):
            return f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{name}"
        raise AssertionError(f"GetAtt {logical_id}.{attribute} ({ty}) is not modelled")

    # -- intrinsic functions ---------------------------------------------------------------
    def resolve(self, node):
        if isinstance(node, list):
            return [v for v in (self.resolve(v) for v in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::GetAtt":
                return self.get_att(*(arg.split(".", 1) if isinstance(arg, str) else arg))
            if fn == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if fn == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub(m.group(1)), arg)
            if fn == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
            if fn == "Fn::Join":
                return arg[0].join(self.resolve(arg[1]))
            if fn == "Fn::Select":
                return self.resolve(arg[1])[int(arg[0])]
            assert not fn.startswith("Fn::"), f"{fn} is not modelled"
        out = {}
        for k, v in node.items():
            v = self.resolve(v)
            if v is not NO_VALUE:
                out[k] = v
        return out

    def _sub(self, name):
        if "." in name:
            return self.get_att(*name.split(".", 1))
        return str(self.ref(name))

    def properties(self, logical_id):
        return self.resolve(self.template["Resources"][logical_id]["Properties"])


# -- resource policies ----------------------------------------------------------------------
def _as_list(v):
    return v if isinstance(v, list) else [v]


def _principal_matches(principal, request):
    if principal == "*":
        return True
    if "AWS" in principal:
        return any(p in ("*", request.get("aws:PrincipalArn")) for p in _as_list(principal["AWS"]))
    if "Service" in principal:
        return request.get("service") in _as_list(principal["Service"])
    return False


def _like(pattern, value):
    return fnmatch.fnmatchcase(value, pattern)


def _condition_holds(operator, key, values, request):
    values = _as_list(values)
    present = key in request
    base = operator.removesuffix("IfExists")
    if operator.endswith("IfExists") and not present:
        return True
    negated = "Not" in base
    if not present:
        # A missing key never matches; the negated operators hold then.
        return negated
    actual = request[key]
    if base in ("ArnEquals", "ArnNotEquals", "StringEquals", "StringNotEquals"):
        match = actual in values
    elif base in ("ArnLike", "ArnNotLike", "StringLike", "StringNotLike"):
        match = any(_like(v, actual) for v in values)
    elif base == "Bool":
        match = str(actual).lower() in (str(v).lower() for v in values)
    else:
        raise AssertionError(f"condition operator {operator} is not modelled")
    return not match if negated else match


def applies(statement, action, resource, request):
    """Whether `statement` applies to the request (principal, action, resource, conditions)."""
    if not _principal_matches(statement["Principal"], request):
        return False
    if not any(_like(a, action) for a in _as_list(statement["Action"])):
        return False
    if not any(_like(r, resource) for r in _as_list(statement["Resource"])):
        return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, values in keys.items():
            if not _condition_holds(operator, key, values, request):
                return False
    return True


def denied(policy, action, resource, request):
    """The Sids of the Deny statements of `policy` that refuse the request."""
    return [
        s.get("Sid", "?")
        for s in policy["Statement"]
        if s["Effect"] == "Deny" and applies(s, action, resource, request)
    ]


def allowed_by(policy, action, resource, request):
    return [
        s.get("Sid", "?")
        for s in policy["Statement"]
        if s["Effect"] == "Allow" and applies(s, action, resource, request)
    ]


def role(arn):
    """A request made by a session of the role (or by the user) `arn`, over TLS."""
    return {"aws:PrincipalArn": arn, "aws:SecureTransport": "true"}


def service(name, source_arn):
    return {"service": name, "aws:SourceArn": source_arn, "aws:SecureTransport": "true"}
