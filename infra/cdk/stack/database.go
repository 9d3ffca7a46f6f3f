package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsrds"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// PostgreSQL settings shared by Keycloak's and the archive's instances.
const (
	// PostgresPort is RDS's default port, open on each instance to its one
	// client's security group only.
	PostgresPort = 5432

	// KeycloakDBSecretName is the generated secret of Keycloak's database user.
	KeycloakDBSecretName = SecretPrefix + "keycloak-db"

	// ArchiveDBSecretName is the generated secret of the archivist's
	// database user; its password is injected as ARCHIVE_DB_PASSWORD.
	ArchiveDBSecretName = SecretPrefix + "archive-db"
	// ArchiveDBName and ArchiveDBUser are the archive's database and the
	// role the archivists connect as.
	ArchiveDBName = "archive"
	ArchiveDBUser = "archivist"
)

// dbSpec is what differs between the two PostgreSQL instances.
type dbSpec struct {
	id, database, user, secretName string
	sg                             awsec2.SecurityGroup
	// client names the one service that connects, for the suppression
	// reasons.
	client string
}

// postgres defines an encrypted, private RDS PostgreSQL instance whose
// master user's generated credentials live in a secret encrypted with the
// data key. Servers present a certificate of the rds-ca-rsa2048-g1 CA, which
// both clients verify (sslmode=verify-full) against the RDS CA bundle their
// images ship; RDS for PostgreSQL 15 and later refuses unencrypted
// connections by default (rds.force_ssl=1).
func (a *Application) postgres(spec dbSpec) awsrds.DatabaseInstance {
	db := awsrds.NewDatabaseInstance(a.Stack, jsii.String(spec.id), &awsrds.DatabaseInstanceProps{
		Engine: awsrds.DatabaseInstanceEngine_Postgres(&awsrds.PostgresInstanceEngineProps{
			Version: awsrds.PostgresEngineVersion_VER_17_6(),
		}),
		InstanceType:   awsec2.InstanceType_Of(awsec2.InstanceClass_BURSTABLE4_GRAVITON, awsec2.InstanceSize_MICRO),
		Vpc:            a.Vpc,
		VpcSubnets:     a.Private,
		SecurityGroups: &[]awsec2.ISecurityGroup{spec.sg},
		Port:           jsii.Number(PostgresPort),
		DatabaseName:   jsii.String(spec.database),
		Credentials: awsrds.Credentials_FromGeneratedSecret(jsii.String(spec.user), &awsrds.CredentialsBaseOptions{
			SecretName:    jsii.String(spec.secretName),
			EncryptionKey: a.DataKey,
		}),
		CaCertificate:           awsrds.CaCertificate_RDS_CA_RSA2048_G1(),
		StorageEncrypted:        jsii.Bool(true),
		StorageEncryptionKey:    a.DataKey,
		MultiAz:                 jsii.Bool(a.cfg.DBMultiAZ),
		AllocatedStorage:        jsii.Number(20),
		MaxAllocatedStorage:     jsii.Number(100),
		BackupRetention:         awscdk.Duration_Days(jsii.Number(7)),
		DeletionProtection:      jsii.Bool(true),
		RemovalPolicy:           awscdk.RemovalPolicy_SNAPSHOT,
		PubliclyAccessible:      jsii.Bool(false),
		AutoMinorVersionUpgrade: jsii.Bool(true),
	})
	suppressions := []*cdknag.NagPackSuppression{
		{Id: jsii.String("AwsSolutions-RDS11"), Reason: jsii.String("The database is reachable only from the " + spec.client + "'s security group; a non-default port would add no protection.")},
		{Id: jsii.String("AwsSolutions-SMG4"), Reason: jsii.String("The " + spec.client + " reads the database password at task start only (ECS secret); rotation would break the running tasks' new connections. Rotate by updating the secret and redeploying the " + spec.client + " service.")},
		{Id: jsii.String("AwsSolutions-RDS6"), Reason: jsii.String("The " + spec.client + " connects with a password from Secrets Manager over TLS verify-full; IAM database authentication would need short-lived tokens that its database client is not built for.")},
	}
	if !a.cfg.DBMultiAZ {
		suppressions = append(suppressions, &cdknag.NagPackSuppression{
			Id: jsii.String("AwsSolutions-RDS3"), Reason: jsii.String("Single-AZ by default to keep the reference deployment cheap; set context dbMultiAz=true for production."),
		})
	}
	cdknag.NagSuppressions_AddResourceSuppressions(db, &suppressions, jsii.Bool(true))
	return db
}

// archiveDatabase defines the archivist's own PostgreSQL instance (not a
// database on Keycloak's instance; infra/README.md says why).
func (a *Application) archiveDatabase() {
	a.ArchiveDB = a.postgres(dbSpec{
		id: "ArchiveDb", database: ArchiveDBName, user: ArchiveDBUser, secretName: ArchiveDBSecretName,
		sg: a.ArchiveDBSG, client: "archivist",
	})
}

// ArchiveDSN is the archivist's ARCHIVE_DSN for the server at host:port:
// no password (ECS injects ARCHIVE_DB_PASSWORD) and sslmode=verify-full
// (the server's certificate must chain to ARCHIVE_DB_CA_PATH and carry
// host).
func ArchiveDSN(host, port *string) *string {
	return awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("postgres://" + ArchiveDBUser + "@"), host, jsii.String(":"), port,
		jsii.String("/" + ArchiveDBName + "?sslmode=verify-full"),
	})
}

// KeycloakJDBCURL is Keycloak's KC_DB_URL for the server at host:port:
// pgjdbc verifies the server's chain against the RDS bundle in the image
// and its host name (sslmode=verify-full).
func KeycloakJDBCURL(host, port *string) *string {
	return awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("jdbc:postgresql://"), host, jsii.String(":"), port,
		jsii.String("/keycloak?sslmode=verify-full&sslrootcert=" + KeycloakRDSCABundle),
	})
}
