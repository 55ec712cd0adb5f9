// How the agent finds its API server: kubeconfig files (contexts, embedded and relative
// credentials) and the in-cluster environment; and its command line refusing bad input with a
// message that names what is wrong.
#include <gtest/gtest.h>

#include <cstdlib>

#include "test_support.h"
#include "zonewall/agent/kube.h"

namespace zonewall::agent {
namespace {

using testing::TempDir;

TEST(Kubeconfig, CurrentContextWithEmbeddedCaAndRelativeFiles) {
  TempDir d;
  d.write("certs/user.crt", "CERT");
  d.write("kubeconfig", R"(apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: "https://10.0.0.1:6443/", certificate-authority-data: "LS0tQ0EtLS0="}
- name: lab
  cluster: {server: "https://lab:6443", insecure-skip-tls-verify: true}
users:
- name: ops
  user: {client-certificate: certs/user.crt, client-key: certs/user.key}
- name: bot
  user: {token: abc123}
contexts:
- name: prod-ops
  context: {cluster: prod, user: ops}
- name: lab-bot
  context: {cluster: lab, user: bot}
current-context: prod-ops
)");
  auto c = loadKubeconfig((d.path() / "kubeconfig").string());
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
  EXPECT_EQ(c->ca_pem, "---CA---");
  EXPECT_EQ(c->cert_file, (d.path() / "certs/user.crt").string());
  EXPECT_FALSE(c->insecure);

  auto lab = loadKubeconfig((d.path() / "kubeconfig").string(), "lab-bot");
  ASSERT_TRUE(lab) << lab.error().str();
  EXPECT_EQ(lab->server, "https://lab:6443");
  EXPECT_EQ(lab->token, "abc123");
  EXPECT_TRUE(lab->insecure);
}

TEST(Kubeconfig, ErrorsNameTheFileAndWhat) {
  TempDir d;
  d.write("bad-yaml", "clusters: [\n");
  auto e = loadKubeconfig((d.path() / "bad-yaml").string());
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().str().find("bad-yaml:"), std::string::npos) << e.error().str();

  d.write("no-context", "contexts: []\ncurrent-context: gone\n");
  e = loadKubeconfig((d.path() / "no-context").string());
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().str().find("no context 'gone'"), std::string::npos) << e.error().str();
}

TEST(InCluster, ReadsTheServiceAccountAndTheServiceAddress) {
  TempDir d;
  d.write("token", "tok-1\n");
  d.write("ca.crt", "CA");
  ::setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto c = inClusterConfig(d.path().string());
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->server, "https://[fd00::1]:443");
  EXPECT_EQ(c->token, "tok-1");
  EXPECT_EQ(c->token_file, (d.path() / "token").string());
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  auto none = inClusterConfig(d.path().string());
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().str().find("KUBERNETES_SERVICE_HOST"), std::string::npos);
}

TEST(AgentCli, BadArgumentsExitTwoNamingTheOption) {
  std::string agent = ZONEWALL_AGENT;
  auto r = testing::run(agent + " --policy-dir /tmp --log-format xml 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--log-format"), std::string::npos) << r.out;
  r = testing::run(agent + " --policy-dir /tmp --kubeconfig /x 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("excludes"), std::string::npos) << r.out;
  r = testing::run("env -u KUBERNETES_SERVICE_HOST " + agent + " 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("no source"), std::string::npos) << r.out;
  r = testing::run(agent + " --policy-dir /tmp --reconcile-interval 0 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--reconcile-interval"), std::string::npos) << r.out;
  r = testing::run(agent + " --kubeconfig /nonexistent/kubeconfig 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("/nonexistent/kubeconfig"), std::string::npos) << r.out;
  r = testing::run(agent + " --policy-dir /tmp --subnet-manager etcd --iface eth0 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--subnet-manager etcd needs --etcd-endpoints"), std::string::npos) << r.out;
  r = testing::run(agent + " --policy-dir /tmp --subnet-manager flannel 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--subnet-manager"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace zonewall::agent
