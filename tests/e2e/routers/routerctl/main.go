// Command routerctl starts and stops the harness's routers for make demo
// (the e2e suites use package routers directly):
//
//	routerctl start NAME FRR_CONF_BODY_FILE   an FRR router; prints "CONTAINER ADDRESS"
//	routerctl routes CONTAINER [ipv4|ipv6]    its BGP table as FRR's JSON (default ipv4)
//	routerctl stop CONTAINER...
//
// The cluster, kubeconfig and images come from the environment
// (routers.EnvFromEnvironment).
package main

import (
	"fmt"
	"os"

	"github.com/meshrr/meshrr/tests/e2e/routers"
)

const usage = "usage: routerctl start NAME FRR_CONF_BODY_FILE | routes CONTAINER [ipv4|ipv6] | stop CONTAINER..."

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "routerctl:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", usage)
	}
	switch cmd, rest := args[0], args[1:]; {
	case cmd == "start" && len(rest) == 2:
		body, err := os.ReadFile(rest[1])
		if err != nil {
			return err
		}
		r, err := routers.EnvFromEnvironment().StartFRR(rest[0], string(body))
		if err != nil {
			return err
		}
		fmt.Println(r.Container, r.Addr)
	case cmd == "routes" && (len(rest) == 1 || len(rest) == 2):
		family := "ipv4"
		if len(rest) == 2 {
			family = rest[1]
		}
		out, err := routers.Vtysh(rest[0], "show bgp "+family+" unicast json")
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(out)
		return err
	case cmd == "stop":
		routers.Stop(rest...)
	default:
		return fmt.Errorf("%s", usage)
	}
	return nil
}
