// libcni_driver: a real CNI client for the tests. It drives a conflist through Debian's libcni
// (github.com/containernetworking/cni/libcni) exactly as a container runtime does: libcni
// validates the names, execs each plugin from CNI_PATH, chains prevResult, caches the result
// and hands it to CHECK and DEL.
//
//   libcni_driver validate|add|check|del|cached CONFLIST CONTAINERID NETNS IFNAME CACHEDIR [NS/POD]
//
// CNI_PATH (colon-separated) names the plugin directories; ZW_HOSTPORT adds a port mapping. Prints the result JSON for add and
// cached; exits 1 with the plugin's error on stderr when libcni reports one.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func main() {
	if len(os.Args) < 7 {
		fmt.Fprintln(os.Stderr, "usage: libcni_driver validate|add|check|del|cached CONFLIST CONTAINERID NETNS IFNAME CACHEDIR [NS/POD]")
		os.Exit(2)
	}
	op, file, cid, netns, ifname, cache := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]
	list, err := libcni.ConfListFromFile(file)
	if err != nil {
		fail(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), cache, nil)
	rt := &libcni.RuntimeConf{
		ContainerID: cid,
		NetNS:       netns,
		IfName:      ifname,
		Args:        [][2]string{{"IgnoreUnknown", "1"}},
	}
	// ZW_HOSTPORT=N maps host port N to the pod's port 8080 (portmap's capability).
	if hp := os.Getenv("ZW_HOSTPORT"); hp != "" {
		var port int
		fmt.Sscan(hp, &port)
		rt.CapabilityArgs = map[string]interface{}{
			"portMappings": []map[string]interface{}{{"hostPort": port, "containerPort": 8080, "protocol": "tcp"}},
		}
	}
	if len(os.Args) > 7 {
		parts := strings.SplitN(os.Args[7], "/", 2)
		rt.Args = append(rt.Args, [2]string{"K8S_POD_NAMESPACE", parts[0]}, [2]string{"K8S_POD_NAME", parts[1]})
	}
	ctx := context.Background()
	switch op {
	case "validate":
		caps, err := cni.ValidateNetworkList(ctx, list)
		if err != nil {
			fail(err)
		}
		fmt.Println(strings.Join(caps, ","))
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		printJSON(res)
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "cached":
		res, err := cni.GetNetworkListCachedResult(list, rt)
		if err != nil {
			fail(err)
		}
		if res == nil {
			fmt.Println("null")
			return
		}
		printJSON(res)
	default:
		fmt.Fprintln(os.Stderr, "unknown operation", op)
		os.Exit(2)
	}
}

func printJSON(res interface{}) {
	out, err := json.Marshal(res)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
