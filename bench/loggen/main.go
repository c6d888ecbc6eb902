// Command loggen writes and replays synthetic log files for the log
// ingestion benchmark bench/logs.sh (see bench/README.md).
//
//	loggen gen  -dir DIR -mb 1024 -files 8 -seed 1 -needle S -needle-every 100000
//	loggen push -url http://host/insert/loki/api/v1/push -labels job=bench -concurrency 4 FILE...
//	loggen free-ports N
//
// gen writes -mb MiB of varied, realistic lines (logfmt application lines,
// JSON application lines, nginx access lines) into -files files, each file
// mostly one kind, as one container's log would be. Identifiers, timestamps
// and durations are unique per line; services, pods, paths, messages, client
// addresses and user agents come from fixed vocabularies of realistic
// sizes, so the data compresses like real logs rather than like a repeated
// line. The same -seed gives the same bytes. Every -needle-every-th line of a
// file carries -needle, a string no other line contains (gen checks), so a
// substring filter has a known answer. A JSON summary goes to stdout.
//
// push reads files and sends their lines as Loki push requests (snappy
// protobuf, as Promtail sends them) of about -batch-bytes each, one stream
// per file labelled filename=<absolute path> plus -labels, from
// -concurrency senders. Entries get the time they are batched at (one
// nanosecond apart), as a tailer that does not parse timestamps would. A
// JSON summary goes to stdout.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = runGen(os.Args[2:])
	case "push":
		err = runPush(os.Args[2:])
	case "free-ports":
		n := 1
		if len(os.Args) > 2 {
			n, err = strconv.Atoi(os.Args[2])
			if err != nil || n < 1 {
				usage()
			}
		}
		err = printFreePorts(n)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loggen:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loggen gen [flags] | loggen push [flags] FILE... | loggen free-ports N  (loggen gen -h for the flags)")
	os.Exit(2)
}

// printFreePorts prints n distinct free loopback TCP ports, holding each
// listener until all are found so that none is printed twice.
func printFreePorts(n int) error {
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	}
	return nil
}
