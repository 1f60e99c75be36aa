#!/usr/bin/env bash
# AxonFlow's custom-orchestrator walkthrough with curl, against wcp: register
# a workflow, gate a step, mark it completed, complete the workflow; then fail
# one and abort one with a reason. Every call carries a Basic auth header, as
# in the guide, and every answer's status code and fields are checked.
#
#   WCP_BIN=target/debug/wcp tests/curl/walkthrough.sh
#       starts its own `wcp serve --tenants FILE` on a free port, with the
#       example policies and a client whose secret it hashes with
#       `wcp tenants hash-secret`;
#   WCP_URL=http://localhost:8080 [WCP_CLIENT_ID=.. WCP_CLIENT_SECRET=..] tests/curl/walkthrough.sh
#       runs against a server that is already up (community mode by default).
#
# Needs curl and python3 (for reading JSON). Ends with "N passed, N failed"
# and exits 1 if a check failed.
set -uo pipefail

passed=0
failed=0
work=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

die() {
    echo "walkthrough: $*" >&2
    [[ -f $work/server.log ]] && tail -n 40 "$work/server.log" >&2
    echo "$passed passed, $((failed + 1)) failed"
    exit 1
}

command -v curl >/dev/null || die "curl is not installed"
command -v python3 >/dev/null || die "python3 is not installed"

# Starts `wcp serve` in tenants mode and sets WCP_URL, WCP_CLIENT_ID, WCP_CLIENT_SECRET.
start_server() {
    WCP_CLIENT_ID=nightly-pipeline
    WCP_CLIENT_SECRET="walkthrough secret $RANDOM$RANDOM"
    local hash
    hash=$(printf '%s' "$WCP_CLIENT_SECRET" | "$WCP_BIN" tenants hash-secret) || die "hash-secret failed"
    cat >"$work/tenants.toml" <<TOML
[[clients]]
client_id = "$WCP_CLIENT_ID"
secret_hash = "$hash"
tenant = "data-eng"
org = "data-eng-org"
roles = ["member"]
TOML
    "$WCP_BIN" policy examples "$work/policies" >/dev/null || die "wcp policy examples failed"
    env -u WCP_LISTEN -u WCP_CONFIG -u WCP_TENANTS -u WCP_POLICY_DIR -u WCP_DATA_DIR \
        "$WCP_BIN" serve --listen 127.0.0.1:0 --data-dir "$work/data" \
        --policy-dir "$work/policies" --tenants "$work/tenants.toml" \
        2>"$work/server.log" &
    server_pid=$!
    local deadline=$((SECONDS + 60)) address=""
    until [[ -n $address ]]; do
        address=$(grep -o 'listening on http://[0-9.:]*' "$work/server.log" | head -n 1 | cut -d' ' -f3)
        kill -0 "$server_pid" 2>/dev/null || die "wcp serve exited"
        ((SECONDS < deadline)) || die "wcp serve never logged its address"
        [[ -n $address ]] || sleep 0.05
    done
    WCP_URL=$address
    until curl -sf "$WCP_URL/ready" >/dev/null; do
        ((SECONDS < deadline)) || die "wcp serve never became ready"
        sleep 0.05
    done
}

if [[ -z ${WCP_URL:-} ]]; then
    [[ -n ${WCP_BIN:-} ]] || die "set WCP_BIN (a wcp binary to start) or WCP_URL (a running server)"
    start_server
fi
WCP_CLIENT_ID=${WCP_CLIENT_ID:-community}
WCP_CLIENT_SECRET=${WCP_CLIENT_SECRET:-}
AUTH="Authorization: Basic $(echo -n "$WCP_CLIENT_ID:$WCP_CLIENT_SECRET" | base64 -w0)"

# call METHOD PATH [BODY]: sets $status and writes the body to $work/body.
call() {
    local args=(-s -o "$work/body" -w '%{http_code}' -X "$1" "$WCP_URL$2" -H "$AUTH")
    if [[ $# -ge 3 ]]; then
        args+=(-H "Content-Type: application/json" -d "$3")
    fi
    status=$(curl "${args[@]}") || die "curl could not reach $WCP_URL$2"
}

# field PATH: the value at a dotted path of the last body ("" when absent).
field() {
    python3 - "$work/body" "$1" <<'PY'
import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2].split("."):
    value = value[int(key)] if isinstance(value, list) else value.get(key) if isinstance(value, dict) else None
print("" if value is None else json.dumps(value) if isinstance(value, (dict, list, bool)) else value)
PY
}

check() {
    local what=$1 expected=$2 actual=$3
    if [[ $actual == "$expected" ]]; then
        passed=$((passed + 1))
        echo "ok   $what"
    else
        failed=$((failed + 1))
        echo "FAIL $what: expected '$expected', got '$actual' (body: $(head -c 300 "$work/body"))"
    fi
}

# Like check, for a value matching an extended regular expression.
check_match() {
    local what=$1 pattern=$2 actual=$3
    if [[ $actual =~ $pattern ]]; then check "$what" "$actual" "$actual"; else check "$what" "/$pattern/" "$actual"; fi
}

echo "--- walkthrough against $WCP_URL as $WCP_CLIENT_ID"

# Step 1: register the workflow.
call POST /api/v1/workflows '{
  "workflow_name": "nightly-data-pipeline",
  "source": "external",
  "trace_id": "datadog-trace-abc123",
  "metadata": {"environment": "production", "team": "data-eng"}
}'
check "register: 201" 201 "$status"
WF_ID=$(field workflow_id)
check_match "register: workflow_id" '^wf_[0-9a-f-]{36}$' "$WF_ID"
check "register: status" in_progress "$(field status)"
check "register: trace_id" datadog-trace-abc123 "$(field trace_id)"

# Step 2: check the gate.
call POST "/api/v1/workflows/$WF_ID/steps/extract-data/gate" '{
  "step_name": "extract-data",
  "step_type": "connector_call",
  "step_input": {"source": "production-db", "table": "customers"}
}'
check "gate: 200" 200 "$status"
check "gate: decision" allow "$(field decision)"
check "gate: step_id" extract-data "$(field step_id)"
check "gate: decision_id" "dec_${WF_ID}_extract-data" "$(field decision_id)"
check "gate: policies evaluated" "global/pii-guard" "$(field policies_evaluated.0.policy_id)"

# Step 3: mark the step completed, with metrics and with an empty POST.
call POST "/api/v1/workflows/$WF_ID/steps/extract-data/complete" '{
  "output": {"rows_extracted": 15000},
  "tokens_in": 0,
  "tokens_out": 0,
  "cost_usd": 0.0
}'
check "step complete with metrics: 204" 204 "$status"
call POST "/api/v1/workflows/$WF_ID/steps/extract-data/complete"
check "step complete without a body: 204" 204 "$status"
call POST "/api/v1/workflows/$WF_ID/steps/extract-data/gate?include_prior_output=true" '{
  "step_name": "extract-data",
  "step_type": "connector_call",
  "step_input": {"source": "production-db", "table": "customers"}
}'
check "retried gate: prior output" 15000 "$(field retry_context.prior_output.rows_extracted)"
check "retried gate: completions" 2 "$(field retry_context.completion_count)"

# A held step keeps the workflow from completing.
call POST "/api/v1/workflows/$WF_ID/steps/notify/gate" \
    '{"step_type": "tool_call", "tool_context": {"tool_name": "send_email"}}'
check "held gate: decision" require_approval "$(field decision)"
call POST "/api/v1/workflows/$WF_ID/complete"
check "complete while held: 409" 409 "$status"
check "complete while held: code" APPROVAL_PENDING "$(field code)"

# Step 4: finalise. On manual cancellation:
call POST "/api/v1/workflows/$WF_ID/abort" '{"reason": "Cancelled by operator"}'
check "abort with a reason: 200" 200 "$status"
check "abort: status" aborted "$(field status)"
check "abort: reason" "Cancelled by operator" "$(field reason)"
call GET "/api/v1/workflows/$WF_ID"
check "aborted workflow: abort_reason" "Cancelled by operator" "$(field abort_reason)"
check "aborted workflow: steps" 2 "$(field current_step_index)"

# On success:
call POST /api/v1/workflows '{"workflow_name": "nightly-data-pipeline"}'
WF_OK=$(field workflow_id)
call POST "/api/v1/workflows/$WF_OK/steps/extract-data/gate" '{"step_type": "connector_call"}'
call POST "/api/v1/workflows/$WF_OK/steps/extract-data/complete"
call POST "/api/v1/workflows/$WF_OK/complete"
check "complete: 200" 200 "$status"
check "complete: status" completed "$(field status)"
check "complete: message" "Workflow completed successfully" "$(field message)"
call GET "/api/v1/workflows/$WF_OK"
check "completed workflow: total_steps" 1 "$(field total_steps)"
check_match "completed workflow: completed_at" '^[0-9-]{10}T[0-9:]{8}\.[0-9]{6}Z$' "$(field completed_at)"

# On failure:
call POST /api/v1/workflows '{"workflow_name": "nightly-data-pipeline"}'
WF_FAIL=$(field workflow_id)
call POST "/api/v1/workflows/$WF_FAIL/fail" '{"reason": "Step extract-data timed out after 300s"}'
check "fail with a reason: 200" 200 "$status"
check "fail: status" failed "$(field status)"
check "fail: reason" "Step extract-data timed out after 300s" "$(field reason)"
call GET "/api/v1/workflows/$WF_FAIL"
check "failed workflow: failure_reason" "Step extract-data timed out after 300s" "$(field failure_reason)"
call POST "/api/v1/workflows/$WF_FAIL/abort" '{"reason": "Cancelled by operator"}'
check "abort after fail: 409" 409 "$status"
check "abort after fail: code" WORKFLOW_TERMINAL "$(field code)"

# The error handling the guide lists: unknown ids are 404.
call GET /api/v1/workflows/wf_00000000-0000-4000-8000-000000000000
check "unknown workflow: 404" 404 "$status"
check "unknown workflow: message" "Workflow not found" "$(field message)"

if [[ $WCP_CLIENT_ID != community ]]; then
    AUTH="Authorization: Basic $(echo -n "$WCP_CLIENT_ID:not-the-secret" | base64 -w0)"
    call GET "/api/v1/workflows/$WF_OK"
    check "wrong secret: 401" 401 "$status"
    check "wrong secret: message" "Invalid credentials" "$(field message)"
fi

echo "$passed passed, $failed failed"
((failed == 0))
