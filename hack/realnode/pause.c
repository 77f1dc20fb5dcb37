/* The pod sandbox's pause process, built static for a FROM scratch image tagged
 * registry.k8s.io/pause:3.10 (no registry is reachable here). As PID 1 of the sandbox it reaps
 * zombies and exits on SIGINT/SIGTERM. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) { (void)sig; _exit(0); }
static void on_child(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }

int main(void) {
  struct sigaction term = {0}, child = {0};
  term.sa_handler = on_term;
  sigaction(SIGINT, &term, 0);
  sigaction(SIGTERM, &term, 0);
  child.sa_handler = on_child;
  child.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &child, 0);
  for (;;) pause();
}
