#!/usr/bin/env bash
# The agent module (the repository root) holds only what the agent uses: every
# module its go.mod requires is needed by one of its packages (`go mod why -m`
# finds an import path), and none of the test harness's modules (Terratest and
# the cloud SDKs it pulls in) is in its module graph (github.com/Azure/go-ansiterm,
# a terminal library in k8s.io/component-base's graph, is not one of them). The
# tests live in the tests/ module, which requires the agent module through a
# replace directive.
set -euo pipefail
cd "$(dirname "$0")/../.."
mods=$(awk '/^require \(/{f=1;next} f&&/^\)/{f=0} f&&$1!~/^\/\//{print $1} /^require [^(]/{print $2}' go.mod)
# shellcheck disable=SC2086 # mods: module paths, split on purpose
why=$(go mod why -m $mods)
if unused=$(grep -o 'main module does not need module [^)]*' <<<"$why"); then
  echo "go.mod requires modules no agent package imports (run go mod tidy):"; echo "$unused"; exit 1
fi
if harness=$(go list -m all | grep -E '^(github.com/gruntwork-io/|github.com/aws/|github.com/Azure/azure-sdk|github.com/Azure/go-autorest|helm.sh/)'); then
  echo "test-harness modules in the agent's module graph (they belong in tests/go.mod):"; echo "$harness"; exit 1
fi
echo "agent module: $(wc -w <<<"$mods") required modules, each imported by an agent package; $(go list -m all | wc -l) in its graph (tests module: $(cd tests && go list -m all | wc -l))"
