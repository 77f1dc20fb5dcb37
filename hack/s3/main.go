// A small S3-compatible server for the tests, the demo and the benchmark: gofakes3 with its
// in-memory backend. MinIO would do the same job but takes many minutes and gigabytes to build;
// gofakes3 speaks the parts of the S3 API the AuditForwarder uses (PutObject, GetObject,
// ListObjectsV2, SigV4 requests with path-style addressing) and builds in seconds.
//
//	s3server -addr 127.0.0.1:0 -bucket audit -bucket other
//
// Prints "listening on http://HOST:PORT" on stdout once it accepts connections.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

type bucketList []string

func (b *bucketList) String() string     { return strings.Join(*b, ",") }
func (b *bucketList) Set(v string) error { *b = append(*b, v); return nil }

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (port 0 picks a free port)")
	var buckets bucketList
	flag.Var(&buckets, "bucket", "bucket to create at start (repeatable)")
	flag.Parse()

	backend := s3mem.New()
	for _, name := range buckets {
		if err := backend.CreateBucket(name); err != nil {
			log.Fatalf("create bucket %q: %v", name, err)
		}
	}
	faker := gofakes3.New(backend, gofakes3.WithAutoBucket(false), gofakes3.WithLogger(gofakes3.DiscardLog()))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen %s: %v", *addr, err)
	}
	fmt.Fprintf(os.Stdout, "listening on http://%s\n", ln.Addr().String())
	if err := http.Serve(ln, faker.Server()); err != nil {
		log.Fatal(err)
	}
}
