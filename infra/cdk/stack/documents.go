package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// Queue settings. The visibility timeout is six times the Lambda's timeout,
// as the SQS event source documentation recommends.
const (
	lambdaTimeoutSeconds = 60
	maxReceiveCount      = 5
)

// documents defines the documents bucket, its access-log bucket, the queue
// that receives object-created notifications, its DLQ and the DLQ alarm.
//
// The notification is set on the bucket resource itself rather than through
// CDK's BucketNotifications custom resource, whose handler needs
// s3:PutBucketNotification on every bucket. S3 checks at creation that it
// may send to the queue, so the bucket depends on the queue policy, and the
// policy names the bucket by its deterministic name
// ca-a2a-documents-<account>-<region> to avoid a cycle.
func (a *Application) documents() {
	st := a.Stack
	bucketName := awscdk.Fn_Join(jsii.String("-"), &[]*string{
		jsii.String("ca-a2a-documents"), awscdk.Aws_ACCOUNT_ID(), awscdk.Aws_REGION(),
	})
	bucketArn := awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("arn:"), awscdk.Aws_PARTITION(), jsii.String(":s3:::"), bucketName,
	})

	logs := awss3.NewBucket(st, jsii.String("AccessLogs"), &awss3.BucketProps{
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Versioned:         jsii.Bool(true),
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Expiration:                  awscdk.Duration_Days(jsii.Number(365)),
			NoncurrentVersionExpiration: awscdk.Duration_Days(jsii.Number(30)),
		}},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	cdknag.NagSuppressions_AddResourceSuppressions(logs, &[]*cdknag.NagPackSuppression{{
		Id:     jsii.String("AwsSolutions-S1"),
		Reason: jsii.String("This is the server access log bucket of the documents bucket; logging it into itself would loop."),
	}}, jsii.Bool(true))

	a.Documents = awss3.NewBucket(st, jsii.String("Documents"), &awss3.BucketProps{
		BucketName:             bucketName,
		Encryption:             awss3.BucketEncryption_S3_MANAGED,
		BlockPublicAccess:      awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:             jsii.Bool(true),
		MinimumTLSVersion:      jsii.Number(1.2),
		Versioned:              jsii.Bool(true),
		ObjectOwnership:        awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		ServerAccessLogsBucket: logs,
		ServerAccessLogsPrefix: jsii.String("documents/"),
		RemovalPolicy:          awscdk.RemovalPolicy_RETAIN,
	})

	a.DLQ = awssqs.NewQueue(st, jsii.String("DocumentsDlq"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	cdknag.NagSuppressions_AddResourceSuppressions(a.DLQ, &[]*cdknag.NagPackSuppression{{
		Id:     jsii.String("AwsSolutions-SQS3"),
		Reason: jsii.String("This queue is the dead-letter queue of the documents queue; an alarm watches its depth."),
	}}, jsii.Bool(true))
	a.Queue = awssqs.NewQueue(st, jsii.String("DocumentsQueue"), &awssqs.QueueProps{
		Encryption:        awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(6 * lambdaTimeoutSeconds)),
		RetentionPeriod:   awscdk.Duration_Days(jsii.Number(4)),
		DeadLetterQueue:   &awssqs.DeadLetterQueue{Queue: a.DLQ, MaxReceiveCount: jsii.Number(maxReceiveCount)},
	})
	res := a.Queue.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("DocumentsBucketNotifications"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("s3.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sqs:SendMessage"),
		Resources:  &[]*string{a.Queue.QueueArn()},
		Conditions: &map[string]interface{}{
			"ArnEquals":    map[string]interface{}{"aws:SourceArn": bucketArn},
			"StringEquals": map[string]interface{}{"aws:SourceAccount": awscdk.Aws_ACCOUNT_ID()},
		},
	}))
	cfnBucket := a.Documents.Node().DefaultChild().(awss3.CfnBucket)
	cfnBucket.SetNotificationConfiguration(&awss3.CfnBucket_NotificationConfigurationProperty{
		QueueConfigurations: &[]interface{}{&awss3.CfnBucket_QueueConfigurationProperty{
			Event: jsii.String("s3:ObjectCreated:*"),
			Queue: a.Queue.QueueArn(),
		}},
	})
	a.Documents.Node().AddDependency(res.PolicyDependable)

	// Its action (the alarm topic) is added with the other alarms'.
	a.DLQAlarm = awscloudwatch.NewAlarm(st, jsii.String("DlqDepthAlarm"), &awscloudwatch.AlarmProps{
		AlarmName: jsii.String("ca-a2a-documents-dlq-depth"),
		AlarmDescription: jsii.String("ca-a2a: documents landed in the DLQ after " +
			"5 failed deliveries; inspect the Lambda logs for their keys and redrive"),
		Metric: a.DLQ.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
			Period:    awscdk.Duration_Minutes(jsii.Number(1)),
			Statistic: jsii.String("Maximum"),
		}),
		Threshold:          jsii.Number(1),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
}
