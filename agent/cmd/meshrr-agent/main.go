// Command meshrr-agent runs beside a routing daemon in every meshrr pod.
package main

import (
	"os"

	"github.com/meshrr/meshrr/agent/internal/app"
)

func main() { os.Exit(app.Main(os.Args[1:], os.Stdout, os.Stderr)) }
