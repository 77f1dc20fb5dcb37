// nwprobe: serve (HTTP and UDP echo), get (HTTP/HTTPS with a ServiceAccount token), udp and lookup, for
// the real-node e2e suite's pods. Standard library only.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	if len(os.Args) < 2 {
		fail("usage: nwprobe serve ADDR | get URL | lookup NAME | udp HOST:PORT MESSAGE")
	}
	switch os.Args[1] {
	case "serve":
		serve(arg(2))
	case "get":
		get(arg(2))
	case "lookup":
		addrs, err := net.LookupHost(arg(2))
		if err != nil {
			fail(err.Error())
		}
		fmt.Println(strings.Join(addrs, " "))
	case "udp":
		udp(arg(2), arg(3))
	default:
		fail("unknown command " + os.Args[1])
	}
}

func arg(i int) string {
	if len(os.Args) <= i {
		fail("missing argument")
	}
	return os.Args[i]
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "nwprobe:", msg)
	os.Exit(1)
}

// udp sends one datagram to addr and prints the answer.
func udp(addr, msg string) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		fail(err.Error())
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		fail(err.Error())
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		fail(err.Error())
	}
	fmt.Println(string(buf[:n]))
}

// serve answers HTTP on addr with the pod's name and echoes UDP datagrams on the same port.
func serve(addr string) {
	host, _ := os.Hostname()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		fail(err.Error())
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte("echo "+host+" "), buf[:n]...), from)
		}
	}()
	fmt.Println("serving", addr, "as", host)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("request %s %s from %s\n", r.Method, r.URL.Path, r.RemoteAddr)
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	fail(http.ListenAndServe(addr, nil).Error())
}

// get prints the status and body of url; for https it trusts the ServiceAccount CA and sends its token.
func get(url string) {
	client := &http.Client{Timeout: 10 * time.Second}
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		fail(err.Error())
	}
	if strings.HasPrefix(url, "https://") {
		ca, err := os.ReadFile(saDir + "/ca.crt")
		if err != nil {
			fail(err.Error())
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		token, err := os.ReadFile(saDir + "/token")
		if err != nil {
			fail(err.Error())
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	res, err := client.Do(req)
	if err != nil {
		fail(err.Error())
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Printf("%d %s", res.StatusCode, body)
}
