package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsservicediscovery"
	"github.com/aws/jsii-runtime-go"
)

// network defines the VPC (10.0.0.0/16, two AZs), its endpoints, flow logs,
// the Cloud Map namespace and the ECS cluster. Without NAT the private
// subnets are isolated: no internet gateway, every AWS API through an
// endpoint.
func (a *Application) network() {
	st := a.Stack
	private := awsec2.SubnetType_PRIVATE_ISOLATED
	subnets := []*awsec2.SubnetConfiguration{}
	if a.cfg.NatGateways > 0 {
		private = awsec2.SubnetType_PRIVATE_WITH_EGRESS
		subnets = append(subnets, &awsec2.SubnetConfiguration{
			Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24),
		})
	}
	subnets = append(subnets, &awsec2.SubnetConfiguration{
		Name: jsii.String("private"), SubnetType: private, CidrMask: jsii.Number(20),
	})
	a.Private = &awsec2.SubnetSelection{SubnetType: private}

	flowLogs := awslogs.NewLogGroup(st, jsii.String("FlowLogs"), &awslogs.LogGroupProps{
		Retention:     awslogs.RetentionDays_ONE_MONTH,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	a.Vpc = awsec2.NewVpc(st, jsii.String("Vpc"), &awsec2.VpcProps{
		IpAddresses:                  awsec2.IpAddresses_Cidr(jsii.String("10.0.0.0/16")),
		MaxAzs:                       jsii.Number(2),
		NatGateways:                  jsii.Number(float64(a.cfg.NatGateways)),
		SubnetConfiguration:          &subnets,
		RestrictDefaultSecurityGroup: jsii.Bool(true),
		FlowLogs: &map[string]*awsec2.FlowLogOptions{
			"FlowLog": {
				Destination: awsec2.FlowLogDestination_ToCloudWatchLogs(flowLogs, nil),
				TrafficType: awsec2.FlowLogTrafficType_ALL,
			},
		},
	})

	// Interface endpoints accept HTTPS only from the groups added in
	// securityGroups, not from the whole VPC.
	a.EndpointsSG = awsec2.NewSecurityGroup(st, jsii.String("EndpointsSG"), &awsec2.SecurityGroupProps{
		Vpc:              a.Vpc,
		Description:      jsii.String("ca-a2a interface VPC endpoints"),
		AllowAllOutbound: jsii.Bool(false),
	})
	a.Vpc.AddGatewayEndpoint(jsii.String("S3Endpoint"), &awsec2.GatewayVpcEndpointOptions{
		Service: awsec2.GatewayVpcEndpointAwsService_S3(),
		Subnets: &[]*awsec2.SubnetSelection{a.Private},
	})
	for _, ep := range []struct {
		id  string
		svc awsec2.InterfaceVpcEndpointAwsService
	}{
		{"SecretsManagerEndpoint", awsec2.InterfaceVpcEndpointAwsService_SECRETS_MANAGER()},
		{"SqsEndpoint", awsec2.InterfaceVpcEndpointAwsService_SQS()},
		{"EcrApiEndpoint", awsec2.InterfaceVpcEndpointAwsService_ECR()},
		{"EcrDockerEndpoint", awsec2.InterfaceVpcEndpointAwsService_ECR_DOCKER()},
		{"LogsEndpoint", awsec2.InterfaceVpcEndpointAwsService_CLOUDWATCH_LOGS()},
	} {
		a.Vpc.AddInterfaceEndpoint(jsii.String(ep.id), &awsec2.InterfaceVpcEndpointOptions{
			Service:           ep.svc,
			Subnets:           a.Private,
			PrivateDnsEnabled: jsii.Bool(true),
			Open:              jsii.Bool(false),
			SecurityGroups:    &[]awsec2.ISecurityGroup{a.EndpointsSG},
		})
	}

	a.Namespace = awsservicediscovery.NewPrivateDnsNamespace(st, jsii.String("Namespace"), &awsservicediscovery.PrivateDnsNamespaceProps{
		Name:        jsii.String(Namespace),
		Vpc:         a.Vpc,
		Description: jsii.String("ca-a2a services: <name>." + Namespace + ", the name each certificate carries"),
	})
	a.Cluster = awsecs.NewCluster(st, jsii.String("Cluster"), &awsecs.ClusterProps{
		ClusterName:         jsii.String(ClusterName),
		Vpc:                 a.Vpc,
		ContainerInsightsV2: awsecs.ContainerInsights_ENABLED,
	})
}
