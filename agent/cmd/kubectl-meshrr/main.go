// Command kubectl-meshrr shows the state of every meshrr group in a
// cluster (`kubectl meshrr status`, `kubectl meshrr topology`) and what an
// upgrade will do to their sessions (`kubectl meshrr plan`).
package main

import (
	"os"

	"github.com/meshrr/meshrr/agent/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
