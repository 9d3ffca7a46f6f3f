package stack_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/ca-a2a/ca-a2a/infra/cdk/stack"
)

func TestNagAwsSolutionsHasNoUnsuppressedFindings(t *testing.T) {
	s := synth(t, nil)
	findings := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-|CdkNagValidationFailure"))
	for name, st := range map[string]awscdk.Stack{"secrets": s.dep.Secrets.Stack, "app": s.dep.App.Stack} {
		ann := assertions.Annotations_FromStack(st)
		// HasNoError and HasNoWarning fail (panic through jsii) with the list
		// of findings.
		noPanic(t, name+" stack errors", func() { ann.HasNoError(jsii.String("*"), findings) })
		noPanic(t, name+" stack warnings", func() { ann.HasNoWarning(jsii.String("*"), findings) })
	}
}

// noPanic turns a failed jsii assertion into a test error.
func noPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	f()
}

// TestNagSuppressionsCarryReasons checks every cdk-nag suppression in both
// templates names a rule and gives a reason a reader can act on.
func TestNagSuppressionsCarryReasons(t *testing.T) {
	s := synth(t, nil)
	n := 0
	for _, tp := range []tmpl{s.appT, s.secretsT} {
		for id, r := range tp.Resources {
			nag, _ := r.Metadata["cdk_nag"].(map[string]any)
			for _, sup := range list(nag["rules_to_suppress"]) {
				m := sup.(map[string]any)
				reason, _ := m["reason"].(string)
				rule, _ := m["id"].(string)
				n++
				if !strings.HasPrefix(rule, "AwsSolutions-") || len(reason) < 40 {
					t.Errorf("%s: suppression %q has no real reason: %q", id, rule, reason)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no suppressions found: is the path metadata missing?")
	}
}

func TestNetwork(t *testing.T) {
	s := synth(t, nil)
	tp := s.app
	tp.ResourceCountIs(jsii.String("AWS::EC2::VPC"), jsii.Number(1))
	tp.HasResourceProperties(jsii.String("AWS::EC2::VPC"), map[string]any{"CidrBlock": "10.0.0.0/16"})
	// Two AZs, private subnets only: no NAT, no internet gateway by default.
	tp.ResourceCountIs(jsii.String("AWS::EC2::Subnet"), jsii.Number(2))
	tp.ResourceCountIs(jsii.String("AWS::EC2::NatGateway"), jsii.Number(0))
	tp.ResourceCountIs(jsii.String("AWS::EC2::InternetGateway"), jsii.Number(0))
	tp.AllResourcesProperties(jsii.String("AWS::EC2::Subnet"), map[string]any{"MapPublicIpOnLaunch": false})
	tp.HasResourceProperties(jsii.String("AWS::EC2::FlowLog"), map[string]any{
		"ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs",
	})

	// Endpoints: S3 gateway plus the interface endpoints every task needs.
	tp.ResourceCountIs(jsii.String("AWS::EC2::VPCEndpoint"), jsii.Number(6))
	var services []string
	for _, id := range s.appT.ofType("AWS::EC2::VPCEndpoint") {
		p := s.appT.Resources[id].Properties
		name := fmt.Sprint(p["ServiceName"])
		if j, ok := p["ServiceName"].(map[string]any)["Fn::Join"]; ok {
			parts := j.([]any)[1].([]any)
			name = fmt.Sprint(parts[len(parts)-1])
		}
		services = append(services, fmt.Sprintf("%s%s", p["VpcEndpointType"], name))
		if p["VpcEndpointType"] == "Interface" && p["PrivateDnsEnabled"] != true {
			t.Errorf("endpoint %s: private DNS off", id)
		}
	}
	slices.Sort(services)
	want := []string{"Gateway.s3", "Interface.ecr.api", "Interface.ecr.dkr", "Interface.logs", "Interface.secretsmanager", "Interface.sqs"}
	if !slices.Equal(services, want) {
		t.Errorf("endpoints = %v, want %v", services, want)
	}
}

func TestNATIsAContextFlag(t *testing.T) {
	s := synth(t, map[string]any{"natGateways": 1})
	s.app.ResourceCountIs(jsii.String("AWS::EC2::NatGateway"), jsii.Number(1))
	s.app.ResourceCountIs(jsii.String("AWS::EC2::InternetGateway"), jsii.Number(1))
	s.app.ResourceCountIs(jsii.String("AWS::EC2::Subnet"), jsii.Number(4))
	// Tasks still run in the private subnets.
	for _, id := range s.appT.ofType("AWS::ECS::Service") {
		nc := s.appT.Resources[id].Properties["NetworkConfiguration"].(map[string]any)["AwsvpcConfiguration"].(map[string]any)
		if nc["AssignPublicIp"] != "DISABLED" {
			t.Errorf("%s: public IP %v", id, nc["AssignPublicIp"])
		}
		for _, sn := range list(nc["Subnets"]) {
			if c := s.appT.construct(ref(sn)); c != "Vpc" || !strings.Contains(ref(sn), "private") {
				t.Errorf("%s runs in subnet %s", id, ref(sn))
			}
		}
	}
}

func TestServiceDiscovery(t *testing.T) {
	s := synth(t, nil)
	s.app.ResourceCountIs(jsii.String("AWS::ServiceDiscovery::PrivateDnsNamespace"), jsii.Number(1))
	s.app.HasResourceProperties(jsii.String("AWS::ServiceDiscovery::PrivateDnsNamespace"), map[string]any{"Name": "ca-a2a.local"})
	var names []string
	for _, id := range s.appT.ofType("AWS::ServiceDiscovery::Service") {
		names = append(names, s.appT.Resources[id].Properties["Name"].(string))
	}
	slices.Sort(names)
	if want := []string{"archivist", "extractor", "keycloak", "orchestrator", "validator"}; !slices.Equal(names, want) {
		t.Errorf("Cloud Map services = %v, want %v", names, want)
	}
	for _, id := range s.appT.ofType("AWS::ECS::Service") {
		if len(list(s.appT.Resources[id].Properties["ServiceRegistries"])) != 1 {
			t.Errorf("%s is not registered in Cloud Map", id)
		}
	}
}

func TestSecretsHoldNoKeyMaterialAndAreKMSEncrypted(t *testing.T) {
	s := synth(t, nil)
	s.secrets.ResourceCountIs(jsii.String("AWS::SecretsManager::Secret"), jsii.Number(14))
	s.secrets.HasResourceProperties(jsii.String("AWS::KMS::Key"), map[string]any{"EnableKeyRotation": true})
	var names []string
	for _, id := range s.secretsT.ofType("AWS::SecretsManager::Secret") {
		p := s.secretsT.Resources[id].Properties
		names = append(names, p["Name"].(string))
		if _, ok := p["SecretString"]; ok {
			t.Errorf("%s carries a SecretString: the stack must never contain key material", id)
		}
		if s.secretsT.Resources[ref(p["KmsKeyId"])].Type != "AWS::KMS::Key" {
			t.Errorf("%s is not encrypted with the stack's KMS key: %v", id, p["KmsKeyId"])
		}
	}
	want := []string{stack.CASecretName, stack.CRLSecretName}
	for _, n := range stack.Principals {
		want = append(want, stack.CertSecretName(n), stack.KeySecretName(n))
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("secrets = %v, want %v", names, want)
	}
	// The only secrets of the application stack are the generated database
	// credentials of Keycloak and the archivist, encrypted with the data key.
	s.app.ResourceCountIs(jsii.String("AWS::SecretsManager::Secret"), jsii.Number(2))
	dataKey, _ := s.appT.byPath(t, "CaA2a/DataKey/Resource")
	for name, user := range map[string]string{stack.KeycloakDBSecretName: "keycloak", stack.ArchiveDBSecretName: stack.ArchiveDBUser} {
		s.app.HasResourceProperties(jsii.String("AWS::SecretsManager::Secret"), map[string]any{
			"Name": name,
			"GenerateSecretString": assertions.Match_ObjectLike(&map[string]any{
				"GenerateStringKey": "password", "SecretStringTemplate": fmt.Sprintf(`{"username":"%s"}`, user),
			}),
			"KmsKeyId": map[string]any{"Fn::GetAtt": []any{dataKey, "Arn"}},
		})
	}
}

// secretExport returns the construct name of the secrets-stack secret an
// ECS valueFrom or IAM resource imports ("OrchestratorCert", "CaCert").
func secretExport(t *testing.T, s *synthesized, v any) string {
	t.Helper()
	name := importName(v)
	if name == "" {
		t.Fatalf("%v is not an import from the secrets stack", v)
	}
	for _, id := range s.secretsT.ofType("AWS::SecretsManager::Secret") {
		if strings.Contains(name, "ExportsOutputRef"+id) {
			return s.secretsT.construct(id)
		}
	}
	t.Fatalf("%s names no secret of the secrets stack", name)
	return ""
}

func TestAgentTasks(t *testing.T) {
	s := synth(t, nil)
	s.app.ResourceCountIs(jsii.String("AWS::ECS::TaskDefinition"), jsii.Number(5))
	s.app.ResourceCountIs(jsii.String("AWS::ECS::Service"), jsii.Number(5))
	s.app.HasResourceProperties(jsii.String("AWS::ECS::Cluster"), map[string]any{
		"ClusterSettings": []any{map[string]any{"Name": "containerInsights", "Value": "enabled"}},
	})
	for _, ag := range stack.Agents {
		t.Run(ag.Name, func(t *testing.T) {
			id := strings.ToUpper(ag.Name[:1]) + ag.Name[1:]
			_, td := s.appT.byPath(t, "CaA2a/"+id+"Task/Resource")
			if td.Properties["RequiresCompatibilities"].([]any)[0] != "FARGATE" {
				t.Error("not a Fargate task")
			}
			c := container(t, td)
			if c["Name"] != ag.Name || c["ReadonlyRootFilesystem"] != true || c["StopTimeout"] != float64(30) {
				t.Errorf("container name/readonly/stopTimeout = %v/%v/%v", c["Name"], c["ReadonlyRootFilesystem"], c["StopTimeout"])
			}
			if u := c["User"]; u != "65532:65532" {
				t.Errorf("user = %v, want the distroless nonroot user", u)
			}
			hc := c["HealthCheck"].(map[string]any)
			if cmd := fmt.Sprint(hc["Command"]); cmd != "[CMD /agent healthcheck]" {
				t.Errorf("health check = %s", cmd)
			}
			pm := list(c["PortMappings"])
			if len(pm) != 1 || pm[0].(map[string]any)["ContainerPort"] != float64(ag.Port) {
				t.Errorf("ports = %v, want %d", pm, ag.Port)
			}
			lc := c["LogConfiguration"].(map[string]any)
			group := ref(lc["Options"].(map[string]any)["awslogs-group"])
			if lc["LogDriver"] != "awslogs" || s.appT.Resources[group].Properties["RetentionInDays"] == nil {
				t.Errorf("logs: %v (group %s without retention?)", lc, group)
			}

			env := envOf(c)
			for k, v := range map[string]any{
				"AGENT_NAME": ag.Name, "AGENT_ADDR": fmt.Sprintf(":%d", ag.Port),
				"OIDC_ISSUER": "https://keycloak.ca-a2a.local:8443/realms/ca-a2a", "OIDC_SERVER_NAME": "keycloak.ca-a2a.local",
				"OIDC_AUDIENCE": "ca-a2a-agents", "LOG_LEVEL": "info",
				"ORCHESTRATOR_URL": "https://orchestrator.ca-a2a.local:8001", "EXTRACTOR_URL": "https://extractor.ca-a2a.local:8002",
				"VALIDATOR_URL": "https://validator.ca-a2a.local:8003", "ARCHIVIST_URL": "https://archivist.ca-a2a.local:8004",
				// The agent fetches its CRL itself, every MTLS_CRL_REFRESH
				// (left to its default): a revocation needs no redeploy.
				"MTLS_CRL_SECRET_ID": "ca-a2a/crl",
			} {
				if env[k] != v {
					t.Errorf("%s = %v, want %v", k, env[k], v)
				}
			}
			for _, k := range slices.Collect(maps.Keys(env)) {
				if k == "MTLS_CRL_SECRET_ID" {
					continue // a secret's name, not its value
				}
				if strings.HasPrefix(k, "MTLS_") || strings.Contains(k, "KEY") || strings.Contains(k, "PASSWORD") {
					t.Errorf("%s is in the plain environment", k)
				}
			}
			_, readsDocs := env["DOCUMENTS_URL"]
			if readsDocs != (ag.Name == "orchestrator" || ag.Name == "extractor") {
				t.Errorf("DOCUMENTS_URL set = %v", readsDocs)
			}
			_, archives := env["ARCHIVE_DSN"]
			if archives != (ag.Name == "archivist") {
				t.Errorf("ARCHIVE_DSN set = %v", archives)
			}
			for k := range env {
				if strings.HasPrefix(k, "EXTRACT_") && ag.Name != "extractor" {
					t.Errorf("%s set on the %s", k, ag.Name)
				}
				if strings.HasPrefix(k, "SQLITE") || k == "JWKS_REFRESH_INTERVAL" || k == "MTLS_CRL_REFRESH" {
					t.Errorf("%s is set: %v", k, env[k])
				}
			}

			// Certificate material: injected as ECS secrets, this agent's
			// own; the archivist also gets its database password. The CRL
			// is not injected (it would only change at a redeploy).
			want := map[string]string{"MTLS_CERT": id + "Cert", "MTLS_KEY": id + "Key", "MTLS_CA_CERT": "CaCert"}
			if ag.Name == "archivist" {
				want["ARCHIVE_DB_PASSWORD"] = "ArchiveDb:password"
			}
			if got := secretsOf(t, s, c); !maps.Equal(got, want) {
				t.Errorf("secrets = %v, want %v", got, want)
			}
		})
	}
}

// TestTasksReadOnlyTheirOwnSecrets checks the execution role of each task
// may read exactly its own certificate, key, the CA bundle and its database
// secret (Keycloak, archivist), and decrypt them only through Secrets
// Manager; and that the task role of each agent may read the CRL secret and
// no other (Keycloak's none), decrypting only through Secrets Manager and
// only for that secret.
func TestTasksReadOnlyTheirOwnSecrets(t *testing.T) {
	s := synth(t, nil)
	secretsKey := s.secretsT.ofType("AWS::KMS::Key")
	if len(secretsKey) != 1 {
		t.Fatalf("secrets stack keys: %v", secretsKey)
	}
	for _, name := range append(agentNames(), "keycloak") {
		id := strings.ToUpper(name[:1]) + name[1:]
		role, _ := s.appT.byPath(t, "CaA2a/"+id+"Task/ExecutionRole/Resource")
		secrets, decrypts := secretGrants(t, s, name+" execution role", role)
		want := []string{"CaCert", id + "Cert", id + "Key"}
		switch name {
		case "keycloak":
			want = append(want, "KeycloakDb")
		case "archivist":
			want = append(want, "ArchiveDb")
		}
		slices.Sort(want)
		if !slices.Equal(secrets, want) {
			t.Errorf("%s execution role reads %v, want %v", name, secrets, want)
		}
		if len(decrypts) == 0 {
			t.Errorf("%s execution role cannot decrypt its secrets", name)
		}

		task, _ := s.appT.byPath(t, "CaA2a/"+id+"Task/TaskRole/Resource")
		secrets, decrypts = secretGrants(t, s, name+" task role", task)
		want = []string{"Crl"}
		if name == "keycloak" {
			want = nil
		}
		if !slices.Equal(secrets, want) {
			t.Errorf("%s task role reads %v, want %v", name, secrets, want)
		}
		if len(decrypts) != len(want) {
			t.Fatalf("%s task role: %d kms:Decrypt statements, want %d", name, len(decrypts), len(want))
		}
		for _, st := range decrypts {
			if r := list(st["Resource"]); len(r) != 1 || !strings.Contains(importName(r[0]), "ExportsOutputFnGetAtt"+secretsKey[0]) {
				t.Errorf("%s task role decrypts %v, want the secrets key alone", name, r)
			}
			// Through Secrets Manager, for the CRL secret only.
			cond, _ := st["Condition"].(map[string]any)["StringEquals"].(map[string]any)
			if arn := cond["kms:EncryptionContext:SecretARN"]; importName(arn) == "" || secretExport(t, s, arn) != "Crl" {
				t.Errorf("%s task role: kms:Decrypt not limited to the CRL secret: %v", name, st["Condition"])
			}
		}
	}
}

// secretGrants returns the secrets (their constructs, sorted) that role's
// policies let it read with secretsmanager:GetSecretValue, and its
// kms:Decrypt statements, each checked to carry kms:ViaService. Any other
// secretsmanager action, or one on "*", fails the test: reading a secret
// means GetSecretValue on its ARN.
func secretGrants(t *testing.T, s *synthesized, what, role string) (secrets []string, decrypts []map[string]any) {
	t.Helper()
	for _, st := range s.appT.statements(role) {
		actions := list(st["Action"])
		for _, a := range actions {
			if a := a.(string); strings.HasPrefix(a, "secretsmanager:") && a != "secretsmanager:GetSecretValue" && a != "secretsmanager:DescribeSecret" {
				t.Errorf("%s: %s: %v", what, a, st)
			}
		}
		switch {
		case slices.Contains(actions, any("secretsmanager:GetSecretValue")):
			for _, r := range list(st["Resource"]) {
				switch {
				case importName(r) != "":
					secrets = append(secrets, secretExport(t, s, r))
				case ref(r) != "":
					secrets = append(secrets, s.appT.construct(ref(r)))
				default:
					t.Errorf("%s reads secret %v", what, r)
				}
			}
		case slices.Contains(actions, any("kms:Decrypt")):
			decrypts = append(decrypts, st)
			if !strings.Contains(fmt.Sprint(st["Condition"]), "kms:ViaService") {
				t.Errorf("%s: kms:Decrypt without kms:ViaService: %v", what, st)
			}
		}
	}
	slices.Sort(secrets)
	return secrets, decrypts
}

func agentNames() []string {
	var out []string
	for _, ag := range stack.Agents {
		out = append(out, ag.Name)
	}
	return out
}

// TestSecurityGroupIngressFollowsTheDefaultPolicy compares every ingress
// rule of the stack with the default callers of docs/contract.md, Methods.
func TestSecurityGroupIngressFollowsTheDefaultPolicy(t *testing.T) {
	s := synth(t, nil)
	tp := s.appT
	var got []string
	for _, id := range tp.ofType("AWS::EC2::SecurityGroupIngress") {
		p := tp.Resources[id].Properties
		from := tp.construct(ref(p["SourceSecurityGroupId"]))
		if from == "" || p["CidrIp"] != nil {
			t.Errorf("%s: ingress from outside a security group: %v", id, p)
		}
		if p["FromPort"] != p["ToPort"] {
			t.Errorf("%s: port range %v-%v", id, p["FromPort"], p["ToPort"])
		}
		got = append(got, fmt.Sprintf("%s->%s:%v", from, tp.construct(ref(p["GroupId"])), p["FromPort"]))
	}
	for _, id := range tp.ofType("AWS::EC2::SecurityGroup") {
		if in := tp.Resources[id].Properties["SecurityGroupIngress"]; in != nil {
			t.Errorf("%s has inline ingress %v", id, in)
		}
	}
	want := []string{
		"FunctionSG->OrchestratorSG:8001",
		"OrchestratorSG->ExtractorSG:8002",
		"OrchestratorSG->ValidatorSG:8003",
		"OrchestratorSG->ArchivistSG:8004",
		"FunctionSG->KeycloakSG:8443",
		"OrchestratorSG->KeycloakSG:8443",
		"ExtractorSG->KeycloakSG:8443",
		"ValidatorSG->KeycloakSG:8443",
		"ArchivistSG->KeycloakSG:8443",
		"KeycloakSG->KeycloakDbSG:5432",
		"ArchivistSG->ArchiveDbSG:5432",
		"FunctionSG->EndpointsSG:443",
		"OrchestratorSG->EndpointsSG:443",
		"ExtractorSG->EndpointsSG:443",
		"ValidatorSG->EndpointsSG:443",
		"ArchivistSG->EndpointsSG:443",
		"KeycloakSG->EndpointsSG:443",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ingress rules:\n got %v\nwant %v", got, want)
	}
	// Every allowed call is also the caller's egress; beyond those, tasks
	// (not the Lambda) may send HTTPS to the S3 gateway endpoint, and the
	// callee-only groups send nothing.
	var egress []string
	for _, id := range tp.ofType("AWS::EC2::SecurityGroupEgress") {
		p := tp.Resources[id].Properties
		egress = append(egress, fmt.Sprintf("%s->%s:%v", tp.construct(ref(p["GroupId"])), tp.construct(ref(p["DestinationSecurityGroupId"])), p["FromPort"]))
	}
	for _, id := range tp.ofType("AWS::EC2::SecurityGroup") {
		for _, e := range list(tp.Resources[id].Properties["SecurityGroupEgress"]) {
			m := e.(map[string]any)
			if m["CidrIp"] == "255.255.255.255/32" { // CDK's "no traffic" placeholder
				continue
			}
			egress = append(egress, fmt.Sprintf("%s->%v:%v", tp.construct(id), m["CidrIp"], m["FromPort"]))
		}
	}
	wantEgress := slices.Clone(want)
	for _, sg := range []string{"OrchestratorSG", "ExtractorSG", "ValidatorSG", "ArchivistSG", "KeycloakSG"} {
		wantEgress = append(wantEgress, sg+"->0.0.0.0/0:443")
	}
	slices.Sort(egress)
	slices.Sort(wantEgress)
	if !slices.Equal(egress, wantEgress) {
		t.Errorf("egress rules:\n got %v\nwant %v", egress, wantEgress)
	}

	// Each service and the function sit in their own group.
	for name, sg := range map[string]string{"Orchestrator": "OrchestratorSG", "Extractor": "ExtractorSG", "Validator": "ValidatorSG", "Archivist": "ArchivistSG", "Keycloak": "KeycloakSG"} {
		_, svc := tp.byPath(t, "CaA2a/"+name+"Service/Service")
		groups := svc.Properties["NetworkConfiguration"].(map[string]any)["AwsvpcConfiguration"].(map[string]any)["SecurityGroups"]
		if l := list(groups); len(l) != 1 || tp.construct(ref(l[0])) != sg {
			t.Errorf("%s service groups = %v", name, groups)
		}
	}
}

// wildcardOK are the actions that take no resource ARN.
var wildcardOK = map[string]bool{
	"ecr:GetAuthorizationToken":          true,
	"ec2:CreateNetworkInterface":         true,
	"ec2:DescribeNetworkInterfaces":      true,
	"ec2:DescribeSubnets":                true,
	"ec2:DeleteNetworkInterface":         true,
	"ec2:AssignPrivateIpAddresses":       true,
	"ec2:UnassignPrivateIpAddresses":     true,
	"secretsmanager:BatchGetSecretValue": true,
}

func TestIAMHasNoWildcardResourcesWhereANameIsKnown(t *testing.T) {
	for _, ctx := range []map[string]any{nil, {"secretsExtension": true}} {
		s := synth(t, ctx)
		for _, tp := range []tmpl{s.appT, s.secretsT} {
			for _, id := range tp.ofType("AWS::IAM::Policy") {
				doc := tp.Resources[id].Properties["PolicyDocument"].(map[string]any)
				for _, st := range list(doc["Statement"]) {
					m := st.(map[string]any)
					for _, r := range list(m["Resource"]) {
						if r != "*" {
							continue
						}
						for _, a := range list(m["Action"]) {
							if !wildcardOK[a.(string)] {
								t.Errorf("%s: %v on *", id, a)
							}
						}
					}
					for _, a := range list(m["Action"]) {
						if strings.Contains(a.(string), "*") {
							t.Errorf("%s: wildcard action %v", id, a)
						}
					}
				}
			}
		}
	}
}

func TestDocumentsBucketAndQueue(t *testing.T) {
	s := synth(t, nil)
	tp := s.appT
	bucketID, b := tp.byPath(t, "CaA2a/Documents/Resource")
	bp := b.Properties
	if fmt.Sprint(bp["PublicAccessBlockConfiguration"]) != "map[BlockPublicAcls:true BlockPublicPolicy:true IgnorePublicAcls:true RestrictPublicBuckets:true]" {
		t.Errorf("public access block = %v", bp["PublicAccessBlockConfiguration"])
	}
	if fmt.Sprint(bp["VersioningConfiguration"]) != "map[Status:Enabled]" || bp["BucketEncryption"] == nil || bp["LoggingConfiguration"] == nil {
		t.Errorf("versioning/encryption/logging = %v/%v/%v", bp["VersioningConfiguration"], bp["BucketEncryption"], bp["LoggingConfiguration"])
	}
	queueID, _ := tp.byPath(t, "CaA2a/DocumentsQueue/Resource")
	dlqID, _ := tp.byPath(t, "CaA2a/DocumentsDlq/Resource")
	qc := list(bp["NotificationConfiguration"].(map[string]any)["QueueConfigurations"])
	if len(qc) != 1 || qc[0].(map[string]any)["Event"] != "s3:ObjectCreated:*" || ref(qc[0].(map[string]any)["Queue"]) != queueID {
		t.Errorf("notifications = %v", qc)
	}
	policyID, _ := tp.byPath(t, "CaA2a/DocumentsQueue/Policy/Resource")
	if !slices.Contains(list(b.DependsOn), any(policyID)) {
		t.Errorf("bucket does not depend on the queue policy %s (S3 checks it at creation): %v", policyID, b.DependsOn)
	}
	// TLS only on the bucket and both queues.
	s.app.HasResourceProperties(jsii.String("AWS::S3::BucketPolicy"), map[string]any{
		"Bucket": map[string]any{"Ref": bucketID},
		"PolicyDocument": assertions.Match_ObjectLike(&map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
			assertions.Match_ObjectLike(&map[string]any{"Effect": "Deny", "Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}}}),
		})}),
	})
	for _, q := range []string{queueID, dlqID} {
		s.app.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
			"Queues": []any{map[string]any{"Ref": q}},
			"PolicyDocument": assertions.Match_ObjectLike(&map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
				assertions.Match_ObjectLike(&map[string]any{"Effect": "Deny", "Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}}}),
			})}),
		})
	}
	// Only this bucket may send to the queue.
	s.app.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
		"Queues": []any{map[string]any{"Ref": queueID}},
		"PolicyDocument": assertions.Match_ObjectLike(&map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
			assertions.Match_ObjectLike(&map[string]any{
				"Effect": "Allow", "Action": "sqs:SendMessage", "Principal": map[string]any{"Service": "s3.amazonaws.com"},
				"Condition": assertions.Match_ObjectLike(&map[string]any{"ArnEquals": assertions.Match_AnyValue()}),
			}),
		})}),
	})
	// DLQ redrive after 5 receives, and an alarm on its depth.
	s.app.HasResourceProperties(jsii.String("AWS::SQS::Queue"), map[string]any{
		"RedrivePolicy": map[string]any{
			"deadLetterTargetArn": map[string]any{"Fn::GetAtt": []any{dlqID, "Arn"}},
			"maxReceiveCount":     5,
		},
		"VisibilityTimeout": 360,
	})
	s.app.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
		"MetricName": "ApproximateNumberOfMessagesVisible",
		"Namespace":  "AWS/SQS",
		"Dimensions": []any{map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": []any{dlqID, "QueueName"}}}},
		"Threshold":  1,
	})
	// Orchestrator and extractor may read the bucket; nobody else.
	for _, ag := range stack.Agents {
		id := strings.ToUpper(ag.Name[:1]) + ag.Name[1:]
		role, _ := tp.byPath(t, "CaA2a/"+id+"Task/TaskRole/Resource")
		reads := false
		for _, st := range tp.statements(role) {
			if strings.Contains(fmt.Sprint(st["Action"]), "s3:") {
				reads = true
			}
		}
		if reads != (ag.Name == "orchestrator" || ag.Name == "extractor") {
			t.Errorf("%s reads the documents bucket: %v", ag.Name, reads)
		}
	}
}

func TestKeycloak(t *testing.T) {
	s := synth(t, nil)
	_, td := s.appT.byPath(t, "CaA2a/KeycloakTask/Resource")
	c := container(t, td)
	env := envOf(c)
	for k, v := range map[string]any{
		"KC_HOSTNAME": "https://keycloak.ca-a2a.local:8443", "KC_HTTPS_PORT": "8443",
		"KC_HTTPS_CLIENT_AUTH": "request", "KC_HTTP_ENABLED": "false",
	} {
		if env[k] != v {
			t.Errorf("%s = %v, want %v", k, env[k], v)
		}
	}
	// The JDBC URL verifies the server: chain against the RDS bundle in the
	// image, host name against the endpoint (pgjdbc's sslmode=verify-full).
	db, _ := s.appT.byPath(t, "CaA2a/KeycloakDb/Resource")
	wantURL := "jdbc:postgresql://${" + db + ".Endpoint.Address}:${" + db + ".Endpoint.Port}/keycloak" +
		"?sslmode=verify-full&sslrootcert=" + stack.KeycloakRDSCABundle
	if got := render(t, env["KC_DB_URL"]); got != wantURL {
		t.Errorf("KC_DB_URL = %s, want %s", got, wantURL)
	}
	if fmt.Sprint(c["Command"]) != "[start --optimized --import-realm]" {
		t.Errorf("command = %v", c["Command"])
	}
	secrets := secretsOf(t, s, c)
	want := map[string]string{
		"CA_A2A_TLS_CERT": "KeycloakCert", "CA_A2A_TLS_KEY": "KeycloakKey", "CA_A2A_TLS_CA": "CaCert",
		"KC_DB_USERNAME": "KeycloakDb:username", "KC_DB_PASSWORD": "KeycloakDb:password",
	}
	if !maps.Equal(secrets, want) {
		t.Errorf("secrets = %v, want %v", secrets, want)
	}
	if pm := list(c["PortMappings"]); len(pm) != 1 || pm[0].(map[string]any)["ContainerPort"] != float64(8443) {
		t.Errorf("ports = %v", pm)
	}
	if c["HealthCheck"] == nil || c["StopTimeout"] != float64(30) {
		t.Errorf("health check %v, stop timeout %v", c["HealthCheck"], c["StopTimeout"])
	}
	s.app.HasResourceProperties(jsii.String("AWS::RDS::DBInstance"), map[string]any{
		"Engine": "postgres", "StorageEncrypted": true, "PubliclyAccessible": false, "DBName": "keycloak", "DeletionProtection": true,
		"CACertificateIdentifier": "rds-ca-rsa2048-g1",
	})
}

func TestLambda(t *testing.T) {
	s := synth(t, nil)
	tp := s.appT
	fnID, fn := tp.byPath(t, "CaA2a/DocumentsFunction/Resource")
	p := fn.Properties
	if p["Runtime"] != "provided.al2023" || fmt.Sprint(p["Architectures"]) != "[arm64]" || p["Handler"] != "bootstrap" {
		t.Errorf("runtime/arch/handler = %v/%v/%v", p["Runtime"], p["Architectures"], p["Handler"])
	}
	vpc := p["VpcConfig"].(map[string]any)
	if sg := list(vpc["SecurityGroupIds"]); len(sg) != 1 || tp.construct(ref(sg[0])) != "FunctionSG" {
		t.Errorf("function groups = %v", sg)
	}
	for _, sn := range list(vpc["SubnetIds"]) {
		if !strings.Contains(ref(sn), "private") {
			t.Errorf("function subnet %v", sn)
		}
	}
	env := p["Environment"].(map[string]any)["Variables"].(map[string]any)
	want := map[string]any{
		"CERT_SECRET_ID": "ca-a2a/lambda-cert", "KEY_SECRET_ID": "ca-a2a/lambda-key", "CA_SECRET_ID": "ca-a2a/ca-cert",
		"MTLS_CRL_SECRET_ID": "ca-a2a/crl",
		"OIDC_TOKEN_URL":     "https://keycloak.ca-a2a.local:8443/realms/ca-a2a/protocol/openid-connect/token",
		"OIDC_ISSUER":        "https://keycloak.ca-a2a.local:8443/realms/ca-a2a",
		"OIDC_SERVER_NAME":   "keycloak.ca-a2a.local", "ORCHESTRATOR_URL": "https://orchestrator.ca-a2a.local:8001",
		"FANOUT_CONCURRENCY": "8",
	}
	if !maps.Equal(env, want) {
		t.Errorf("environment = %v, want %v", env, want)
	}
	if p["Layers"] != nil {
		t.Errorf("layers without secretsExtension: %v", p["Layers"])
	}
	// SAM finds the function and its code through the asset metadata.
	if fn.Metadata["aws:asset:property"] != "Code" || fn.Metadata["aws:asset:path"] == nil {
		t.Errorf("SAM metadata missing: %v", fn.Metadata)
	}

	queueID, _ := tp.byPath(t, "CaA2a/DocumentsQueue/Resource")
	s.app.ResourceCountIs(jsii.String("AWS::Lambda::EventSourceMapping"), jsii.Number(1))
	s.app.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), map[string]any{
		"FunctionName":                   map[string]any{"Ref": fnID},
		"EventSourceArn":                 map[string]any{"Fn::GetAtt": []any{queueID, "Arn"}},
		"FunctionResponseTypes":          []any{"ReportBatchItemFailures"},
		"BatchSize":                      10,
		"MaximumBatchingWindowInSeconds": 5,
		"ScalingConfig":                  map[string]any{"MaximumConcurrency": 5},
	})

	// The role reads its own three secrets, the CRL and the queue, nothing
	// more.
	role := ref(p["Role"])
	var secrets, queue []string
	for _, st := range tp.statements(role) {
		actions := fmt.Sprint(list(st["Action"]))
		for _, r := range list(st["Resource"]) {
			switch {
			case strings.Contains(actions, "secretsmanager:GetSecretValue"):
				secrets = append(secrets, secretExport(t, s, r))
			case strings.Contains(actions, "sqs:"):
				queue = append(queue, ref(r))
			}
		}
	}
	slices.Sort(secrets)
	if !slices.Equal(secrets, []string{"CaCert", "Crl", "LambdaCert", "LambdaKey"}) {
		t.Errorf("function reads secrets %v", secrets)
	}
	if !slices.Equal(queue, []string{queueID}) {
		t.Errorf("function reads queues %v", queue)
	}
}

func TestSecretsExtensionIsAContextFlag(t *testing.T) {
	s := synth(t, map[string]any{"secretsExtension": "true"})
	_, fn := s.appT.byPath(t, "CaA2a/DocumentsFunction/Resource")
	if len(list(fn.Properties["Layers"])) != 1 {
		t.Errorf("layers = %v", fn.Properties["Layers"])
	}
	env := fn.Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
	if env["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"] != "2773" {
		t.Errorf("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT = %v", env["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"])
	}
	for _, st := range s.appT.statements(ref(fn.Properties["Role"])) {
		if strings.Contains(fmt.Sprint(st["Action"]), "BatchGetSecretValue") {
			t.Errorf("BatchGetSecretValue granted although the extension reads the secrets: %v", st)
		}
	}
}

func TestContextValidation(t *testing.T) {
	for _, ctx := range []map[string]any{
		{"natGateways": "many"}, {"natGateways": 3}, {"secretsExtension": "yes please"},
		{"alarmEmail": "ops"}, {"alarmEmail": "a@example.com,b@example.com"}, {"alarmEmail": "Ops <ops@example.com>"},
		{"authRefusalsThreshold": 0}, {"authRefusalsThreshold": "ten"}, {"internalErrorsThreshold": -1},
	} {
		app, _ := newAppNoConfig(t, ctx)
		root, _ := stack.FindRepoRoot(".")
		if _, err := stack.ConfigFromContext(app, root); err == nil {
			t.Errorf("context %v accepted", ctx)
		}
	}
	app, _ := newAppNoConfig(t, map[string]any{"alarmEmail": "ops@example.com", "authRefusalsThreshold": "25", "internalErrorsThreshold": 2})
	root, _ := stack.FindRepoRoot(".")
	cfg, err := stack.ConfigFromContext(app, root)
	if err != nil || cfg.AlarmEmail != "ops@example.com" || cfg.AuthRefusalsThreshold != 25 || cfg.InternalErrorsThreshold != 2 {
		t.Errorf("valid alarm context: %+v, %v", cfg, err)
	}
	app, _ = newAppNoConfig(t, nil)
	if cfg, _ := stack.ConfigFromContext(app, root); cfg.AuthRefusalsThreshold != stack.DefaultAuthRefusalsThreshold ||
		cfg.InternalErrorsThreshold != stack.DefaultInternalErrorsThreshold || cfg.AlarmEmail != "" {
		t.Errorf("default alarm context: %+v", cfg)
	}
	if err := stack.CheckRepoRoot(t.TempDir()); err == nil {
		t.Error("an empty directory passed as the repository root")
	}
}

// TestFirstDeploymentOrder checks that services start after what their
// health checks need: Keycloak (JWKS) before every agent, the peers before
// the orchestrator, the orchestrator before the Lambda gets events.
func TestFirstDeploymentOrder(t *testing.T) {
	s := synth(t, nil)
	tp := s.appT
	dependsOn := func(path string) []string {
		_, r := tp.byPath(t, path)
		var out []string
		for _, d := range list(r.DependsOn) {
			out = append(out, tp.construct(d.(string)))
		}
		return out
	}
	for _, ag := range stack.Agents {
		id := strings.ToUpper(ag.Name[:1]) + ag.Name[1:]
		deps := dependsOn("CaA2a/" + id + "Service/Service")
		want := []string{"KeycloakService"}
		if ag.Name == "orchestrator" {
			want = append(want, "ExtractorService", "ValidatorService", "ArchivistService")
		}
		for _, w := range want {
			if !slices.Contains(deps, w) {
				t.Errorf("%s service does not depend on %s: %v", ag.Name, w, deps)
			}
		}
	}
	for _, id := range append(tp.ofType("AWS::Lambda::EventSourceMapping"), "") {
		path := "CaA2a/DocumentsFunction/Resource"
		if id != "" {
			path, _ = tp.Resources[id].Metadata["aws:cdk:path"].(string)
		}
		if deps := dependsOn(path); !slices.Contains(deps, "OrchestratorService") {
			t.Errorf("%s does not depend on the orchestrator service: %v", path, deps)
		}
	}
}

func TestOperatorOutputs(t *testing.T) {
	s := synth(t, nil)
	for _, o := range []string{"DocumentsBucketName", "DocumentsQueueUrl", "DocumentsDlqUrl", "FunctionName", "ClusterName", "AlarmTopicArn", "DashboardName", "ArchiveDbEndpoint"} {
		s.app.HasOutput(jsii.String(o), map[string]any{"Value": assertions.Match_AnyValue()})
	}
	s.app.HasResourceProperties(jsii.String("AWS::ECS::Cluster"), map[string]any{"ClusterName": stack.ClusterName})
	for _, name := range append(agentNames(), "keycloak") {
		s.app.HasResourceProperties(jsii.String("AWS::ECS::Service"), map[string]any{"ServiceName": "ca-a2a-" + name})
	}
}
