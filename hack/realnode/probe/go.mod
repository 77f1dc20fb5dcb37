// The real-node suite's test program: serves and fetches HTTP and resolves names with Go's own
// resolver, so the test image needs no libc or NSS (busybox-static's resolver is glibc's, which a
// FROM scratch image cannot load).
module netwarden.io/hack/realnode/probe

go 1.25.0
