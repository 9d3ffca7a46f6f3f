package stack_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/aws/jsii-runtime-go"

	"github.com/ca-a2a/ca-a2a/infra/cdk/stack"
)

// TestArchivistStoreOnPostgreSQL checks the archivist's store: its own
// encrypted RDS PostgreSQL instance, a DSN without password that verifies
// the server, the bundle path, two tasks deployed without a gap, and
// nothing left of the EFS volume.
func TestArchivistStoreOnPostgreSQL(t *testing.T) {
	s := synth(t, nil)
	tp := s.appT
	for _, typ := range []string{"AWS::EFS::FileSystem", "AWS::EFS::AccessPoint", "AWS::EFS::MountTarget"} {
		s.app.ResourceCountIs(jsii.String(typ), jsii.Number(0))
	}
	s.app.ResourceCountIs(jsii.String("AWS::RDS::DBInstance"), jsii.Number(2))

	dbID, db := tp.byPath(t, "CaA2a/ArchiveDb/Resource")
	dataKey, _ := tp.byPath(t, "CaA2a/DataKey/Resource")
	p := db.Properties
	for k, want := range map[string]any{
		"Engine": "postgres", "DBName": stack.ArchiveDBName, "StorageEncrypted": true, "PubliclyAccessible": false,
		"DeletionProtection": true, "BackupRetentionPeriod": float64(7), "CACertificateIdentifier": "rds-ca-rsa2048-g1",
		"MultiAZ": false, "Port": "5432",
	} {
		if p[k] != want {
			t.Errorf("archive database %s = %v, want %v", k, p[k], want)
		}
	}
	if ref(p["KmsKeyId"]) != dataKey {
		t.Errorf("archive database key = %v, want the data key %s", p["KmsKeyId"], dataKey)
	}
	if sgs := list(p["VPCSecurityGroups"]); len(sgs) != 1 || tp.construct(ref(sgs[0])) != "ArchiveDbSG" {
		t.Errorf("archive database groups = %v", sgs)
	}
	if p["MasterUsername"] != stack.ArchiveDBUser {
		t.Errorf("master user = %v, want %s", p["MasterUsername"], stack.ArchiveDBUser)
	}
	if pw := render(t, p["MasterUserPassword"]); !strings.HasPrefix(pw, "{{resolve:secretsmanager:") || !strings.HasSuffix(pw, ":SecretString:password::}}") {
		t.Errorf("master password %s does not come from the generated secret", pw)
	}

	// Port 5432 of the archive database: from the archivist only.
	var from []string
	for _, id := range tp.ofType("AWS::EC2::SecurityGroupIngress") {
		ing := tp.Resources[id].Properties
		if tp.construct(ref(ing["GroupId"])) == "ArchiveDbSG" {
			from = append(from, tp.construct(ref(ing["SourceSecurityGroupId"]))+":"+render(t, ing["FromPort"]))
		}
	}
	if len(from) != 1 || from[0] != "ArchivistSG:5432" {
		t.Errorf("archive database ingress = %v, want [ArchivistSG:5432]", from)
	}

	_, td := tp.byPath(t, "CaA2a/ArchivistTask/Resource")
	env := envOf(container(t, td))
	dsn := render(t, env["ARCHIVE_DSN"])
	wantDSN := "postgres://" + stack.ArchiveDBUser + "@${" + dbID + ".Endpoint.Address}:${" + dbID + ".Endpoint.Port}/" +
		stack.ArchiveDBName + "?sslmode=verify-full"
	if dsn != wantDSN {
		t.Errorf("ARCHIVE_DSN = %s, want %s", dsn, wantDSN)
	}
	u, err := url.Parse(strings.NewReplacer("${"+dbID+".Endpoint.Address}", "db.example", "${"+dbID+".Endpoint.Port}", "5432").Replace(dsn))
	if err != nil {
		t.Fatalf("ARCHIVE_DSN does not parse: %v", err)
	}
	if _, hasPassword := u.User.Password(); hasPassword || u.User.Username() != stack.ArchiveDBUser {
		t.Errorf("ARCHIVE_DSN user info = %v: the password must come from ARCHIVE_DB_PASSWORD only", u.User)
	}
	if u.Query().Get("sslmode") != "verify-full" || u.Scheme != "postgres" || u.Port() != "5432" {
		t.Errorf("ARCHIVE_DSN = %s: want postgres://, port 5432, sslmode=verify-full", dsn)
	}
	if env["ARCHIVE_DB_CA_PATH"] != stack.AgentRDSCABundle {
		t.Errorf("ARCHIVE_DB_CA_PATH = %v, want %s", env["ARCHIVE_DB_CA_PATH"], stack.AgentRDSCABundle)
	}

	// Two archivists, new tasks started before old ones stop.
	_, svc := tp.byPath(t, "CaA2a/ArchivistService/Service")
	dc := svc.Properties["DeploymentConfiguration"].(map[string]any)
	if dc["MaximumPercent"] != float64(200) || dc["MinimumHealthyPercent"] != float64(100) || svc.Properties["DesiredCount"] != float64(2) {
		t.Errorf("archivist deployment = %v, desired %v; want 200 %%/100 %%, 2 tasks", dc, svc.Properties["DesiredCount"])
	}
	// No task mounts anything, and the archivist's task role holds nothing
	// beside reading the CRL secret (TestTasksReadOnlyTheirOwnSecrets): its
	// store is reached over the network, with a password.
	for _, id := range tp.ofType("AWS::ECS::TaskDefinition") {
		if v := tp.Resources[id].Properties["Volumes"]; v != nil {
			t.Errorf("%s has volumes %v", id, v)
		}
	}
	role, _ := tp.byPath(t, "CaA2a/ArchivistTask/TaskRole/Resource")
	for _, st := range tp.statements(role) {
		if sid := st["Sid"]; sid != "ReadCRLSecret" && sid != "DecryptCRLSecret" {
			t.Errorf("archivist task role statement %v", st)
		}
	}
}

// TestDatabasesFollowMultiAZFlag checks dbMultiAz applies to both
// instances and single-AZ is the default.
func TestDatabasesFollowMultiAZFlag(t *testing.T) {
	for _, tc := range []struct {
		ctx  map[string]any
		want bool
	}{
		{nil, false},
		{map[string]any{"dbMultiAz": "true"}, true},
	} {
		s := synth(t, tc.ctx)
		ids := s.appT.ofType("AWS::RDS::DBInstance")
		if len(ids) != 2 {
			t.Fatalf("%d database instances", len(ids))
		}
		for _, id := range ids {
			if got := s.appT.Resources[id].Properties["MultiAZ"]; got != tc.want {
				t.Errorf("context %v: %s MultiAZ = %v, want %v", tc.ctx, s.appT.construct(id), got, tc.want)
			}
		}
	}
}
