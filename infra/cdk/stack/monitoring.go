package stack

import (
	"fmt"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/jsii-runtime-go"
)

// Alarm and dashboard settings. The agents flush their Embedded Metric
// Format lines at most once a minute, so five minutes hold several flushes
// of every running task.
const (
	// AlarmTopicName is the SNS topic every alarm notifies.
	AlarmTopicName = "ca-a2a-alarms"
	// DashboardName is the CloudWatch dashboard.
	DashboardName = "ca-a2a"
	// CertificateExpiryDays is the alarm threshold: fewer days left on the
	// serving certificate or a trusted CA of an agent.
	CertificateExpiryDays = 30
	// BindingMismatchReason is the refusal code of a token presented with a
	// certificate other than the one it is bound to.
	BindingMismatchReason = "binding_mismatch"

	alarmPeriodMinutes = 5
	// The expiry gauge changes once a day; an hour smooths over restarts.
	certificatePeriodHours = 1
)

// AlarmName is the CloudWatch alarm name of kind for who (an agent name,
// "lambda" or "documents").
func AlarmName(who, kind string) string { return "ca-a2a-" + who + "-" + kind }

// Alarm kinds, the suffixes of the alarm names.
const (
	AlarmBindingMismatch   = "binding-mismatch"
	AlarmAuthRefusals      = "auth-refusals"
	AlarmInternalErrors    = "internal-errors"
	AlarmCertificateExpiry = "certificate-expiry"
	AlarmLambdaErrors      = "errors"
	AlarmDLQDepth          = "dlq-depth"
)

// emf is a metric of the agents' and the Lambda's EMF lines (namespace
// CaA2a, dimension Agent plus extra). It carries no label: an alarm on a
// labelled metric is written as a metric-math query instead of a plain
// metric.
func emf(name, agent, statistic string, period awscdk.Duration, extra map[string]string) awscloudwatch.Metric {
	dims := map[string]*string{AgentDimension: jsii.String(agent)}
	for k, v := range extra {
		dims[k] = jsii.String(v)
	}
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(MetricsNamespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &dims,
		Statistic:     jsii.String(statistic),
		Period:        period,
	})
}

// monitoring defines the alarm topic, the alarms on the agents' and the
// Lambda's metrics (plus the DLQ's) and the dashboard.
func (a *Application) monitoring() {
	a.alarmTopic()
	action := awscloudwatchactions.NewSnsAction(a.AlarmTopic)
	add := func(name string, al awscloudwatch.Alarm) {
		al.AddAlarmAction(action)
		a.Alarms[name] = al
	}
	st := a.Stack
	five := awscdk.Duration_Minutes(jsii.Number(alarmPeriodMinutes))
	count := func(id, name, desc string, m awscloudwatch.Metric, threshold int) {
		add(name, awscloudwatch.NewAlarm(st, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmName:          jsii.String(name),
			AlarmDescription:   jsii.String(desc),
			Metric:             m,
			Threshold:          jsii.Number(threshold),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			// A count with no data point is a count of zero: nothing was
			// refused or failed, or nothing ran.
			TreatMissingData: awscloudwatch.TreatMissingData_NOT_BREACHING,
		}))
	}
	for _, ag := range Agents {
		id := constructID(ag.Name)
		count(id+"BindingMismatchAlarm", AlarmName(ag.Name, AlarmBindingMismatch),
			"ca-a2a: the "+ag.Name+" refused a token presented with a certificate other than the one it is bound to "+
				"(binding_mismatch): a stolen token replayed from another client. Find the caller in the "+ag.Name+"'s access log (reason binding_mismatch).",
			emf("AuthRefusals", ag.Name, "Sum", five, map[string]string{"Reason": BindingMismatchReason}), 1)
		count(id+"AuthRefusalsAlarm", AlarmName(ag.Name, AlarmAuthRefusals),
			fmt.Sprintf("ca-a2a: the %s refused at least %d requests in %d minutes (any reason); the access log's reason field and the dashboard's refusals by reason tell which.",
				ag.Name, a.cfg.AuthRefusalsThreshold, alarmPeriodMinutes),
			emf("AuthRefusals", ag.Name, "Sum", five, nil), a.cfg.AuthRefusalsThreshold)
		count(id+"InternalErrorsAlarm", AlarmName(ag.Name, AlarmInternalErrors),
			fmt.Sprintf("ca-a2a: the %s answered at least %d JSON-RPC internal errors (-32603) in %d minutes; see its log group.",
				ag.Name, a.cfg.InternalErrorsThreshold, alarmPeriodMinutes),
			emf("InternalErrors", ag.Name, "Sum", five, nil), a.cfg.InternalErrorsThreshold)
		add(AlarmName(ag.Name, AlarmCertificateExpiry), awscloudwatch.NewAlarm(st, jsii.String(id+"CertificateExpiryAlarm"), &awscloudwatch.AlarmProps{
			AlarmName: jsii.String(AlarmName(ag.Name, AlarmCertificateExpiry)),
			AlarmDescription: jsii.String(fmt.Sprintf("ca-a2a: the %s's serving certificate or a CA it trusts expires within %d days; "+
				"re-issue with certgen, publish and redeploy (infra/README.md, Rotation).", ag.Name, CertificateExpiryDays)),
			Metric:             emf("CertificateDaysToExpiry", ag.Name, "Minimum", awscdk.Duration_Hours(jsii.Number(certificatePeriodHours)), nil),
			Threshold:          jsii.Number(CertificateExpiryDays),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD,
			// A gauge with no data point says nothing about the certificate
			// (the agent is down or restarting): keep the last state, so an
			// expiry alarm is neither raised nor cleared by silence.
			TreatMissingData: awscloudwatch.TreatMissingData_IGNORE,
		}))
	}
	count("FunctionErrorsAlarm", AlarmName(LambdaAgentName, AlarmLambdaErrors),
		"ca-a2a: the documents Lambda failed invocations (a crash, a timeout or an error return, not per-message batchItemFailures); see its log group.",
		a.Function.MetricErrors(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum")}), 1)
	add(AlarmName("documents", AlarmDLQDepth), a.DLQAlarm)
	a.dashboard()
}

// alarmTopic defines the SNS topic of every alarm: encrypted with its own
// key, which CloudWatch may use (an AWS-managed SNS key would refuse
// CloudWatch), TLS only, publishable by this account's alarms, and an e-mail
// subscription when the context gives an address.
func (a *Application) alarmTopic() {
	st := a.Stack
	key := awskms.NewKey(st, jsii.String("AlarmsKey"), &awskms.KeyProps{
		Alias:             jsii.String("alias/ca-a2a-alarms"),
		Description:       jsii.String("ca-a2a: encrypts the alarm notifications (SNS topic " + AlarmTopicName + ")"),
		EnableKeyRotation: jsii.Bool(true),
		PendingWindow:     awscdk.Duration_Days(jsii.Number(7)),
		RemovalPolicy:     awscdk.RemovalPolicy_DESTROY,
	})
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmsPublishEncrypted"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey"),
		Resources:  jsii.Strings("*"),
	}), nil)
	a.AlarmTopic = awssns.NewTopic(st, jsii.String("AlarmTopic"), &awssns.TopicProps{
		TopicName:   jsii.String(AlarmTopicName),
		DisplayName: jsii.String("ca-a2a alarms"),
		MasterKey:   key,
		EnforceSSL:  jsii.Bool(true),
	})
	a.AlarmTopic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmsOfThisAccount"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  &[]*string{a.AlarmTopic.TopicArn()},
		Conditions: &map[string]interface{}{
			"ArnLike": map[string]interface{}{"aws:SourceArn": awscdk.Fn_Join(jsii.String(""), &[]*string{
				jsii.String("arn:"), awscdk.Aws_PARTITION(), jsii.String(":cloudwatch:"), awscdk.Aws_REGION(), jsii.String(":"),
				awscdk.Aws_ACCOUNT_ID(), jsii.String(":alarm:*"),
			})},
			"StringEquals": map[string]interface{}{"aws:SourceAccount": awscdk.Aws_ACCOUNT_ID()},
		},
	}))
	if a.cfg.AlarmEmail != "" {
		a.AlarmTopic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(a.cfg.AlarmEmail), nil))
	}
}

// dashboard defines one dashboard: requests and refusals (by reason) per
// agent, latency p50/p99 per method, the Lambda's documents, days to
// certificate expiry and every alarm's state.
func (a *Application) dashboard() {
	minute := awscdk.Duration_Minutes(jsii.Number(1))
	five := awscdk.Duration_Minutes(jsii.Number(alarmPeriodMinutes))
	hour := awscdk.Duration_Hours(jsii.Number(certificatePeriodHours))
	perAgent := func(metric, statistic string, period awscdk.Duration) *[]awscloudwatch.IMetric {
		var ms []awscloudwatch.IMetric
		for _, ag := range Agents {
			ms = append(ms, emf(metric, ag.Name, statistic, period, nil).With(&awscloudwatch.MetricOptions{Label: jsii.String(ag.Name)}))
		}
		return &ms
	}
	graph := func(title string, width float64, left *[]awscloudwatch.IMetric) awscloudwatch.GraphWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Width: jsii.Number(width), Height: jsii.Number(6), Left: left,
		})
	}
	// search is a SEARCH expression over the CaA2a metrics with exactly
	// the dimensions dims: one line per dimension-value combination found
	// (every method, every refusal reason), which a fixed list would miss.
	// label is a dynamic label naming each line by its dimension values.
	search := func(dims, filter, statistic, label string, period int) awscloudwatch.IMetric {
		return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String("SEARCH('{" + MetricsNamespace + "," + dims + "} " + filter + "', '" + statistic + "', " + strconv.Itoa(period) + ")"),
			Label:      jsii.String(label),
			Period:     awscdk.Duration_Seconds(jsii.Number(period)),
		})
	}

	rows := [][]awscloudwatch.IWidget{
		{
			graph("Requests per agent (JSON-RPC calls answered)", 8, perAgent("Requests", "Sum", minute)),
			graph("Auth refusals per agent (any reason)", 8, perAgent("AuthRefusals", "Sum", minute)),
			graph("Internal errors (-32603) per agent", 8, perAgent("InternalErrors", "Sum", minute)),
		},
	}
	var reasons []awscloudwatch.IWidget
	for _, ag := range Agents {
		reasons = append(reasons, graph("Refusals by reason: "+ag.Name, 6, &[]awscloudwatch.IMetric{
			search(AgentDimension+",Reason", `MetricName="AuthRefusals" `+AgentDimension+`="`+ag.Name+`"`, "Sum", "${PROP('Dim.Reason')}", 300),
		}))
	}
	rows = append(rows, reasons)

	pd := map[string]string{"Method": "process_document"}
	rows = append(rows, []awscloudwatch.IWidget{
		graph("Latency of process_document (orchestrator), ms", 8, &[]awscloudwatch.IMetric{
			emf("Latency", "orchestrator", "p50", five, pd).With(&awscloudwatch.MetricOptions{Label: jsii.String("p50")}),
			emf("Latency", "orchestrator", "p99", five, pd).With(&awscloudwatch.MetricOptions{Label: jsii.String("p99")}),
		}),
		graph("Latency p50 per agent and method, ms", 8, &[]awscloudwatch.IMetric{
			search(AgentDimension+",Method", `MetricName="Latency"`, "p50", "${PROP('Dim.Agent')} ${PROP('Dim.Method')}", 300),
		}),
		graph("Latency p99 per agent and method, ms", 8, &[]awscloudwatch.IMetric{
			search(AgentDimension+",Method", `MetricName="Latency"`, "p99", "${PROP('Dim.Agent')} ${PROP('Dim.Method')}", 300),
		}),
	})

	docs := func(name, label string) awscloudwatch.IMetric {
		return emf(name, LambdaAgentName, "Sum", five, nil).With(&awscloudwatch.MetricOptions{Label: jsii.String(label)})
	}
	rows = append(rows, []awscloudwatch.IWidget{
		graph("Documents (Lambda)", 8, &[]awscloudwatch.IMetric{
			docs("DocumentsProcessed", "processed"),
			docs("DocumentsFailed", "failed (permanent, acknowledged)"),
			docs("DocumentsRetried", "retried (transient)"),
		}),
		graph("Lambda invocations and errors, DLQ depth", 8, &[]awscloudwatch.IMetric{
			a.Function.MetricInvocations(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum"), Label: jsii.String("invocations")}),
			a.Function.MetricErrors(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum"), Label: jsii.String("errors")}),
			a.DLQ.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum"), Label: jsii.String("DLQ depth")}),
		}),
		graph("Extraction workers killed by a limit", 8, &[]awscloudwatch.IMetric{
			emf("ExtractWorkersKilled", "extractor", "Sum", five, nil),
		}),
	})

	expiry := awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
		Title:  jsii.String("Days to certificate expiry (serving certificate and trusted CAs, minimum)"),
		Width:  jsii.Number(12),
		Height: jsii.Number(6),
		Left:   perAgent("CertificateDaysToExpiry", "Minimum", hour),
		LeftAnnotations: &[]*awscloudwatch.HorizontalAnnotation{{
			Value: jsii.Number(CertificateExpiryDays), Label: jsii.String("alarm"), Color: jsii.String("#d62728"),
		}},
	})
	var alarms []interfacesawscloudwatch.IAlarmRef
	for _, ag := range Agents {
		for _, kind := range []string{AlarmBindingMismatch, AlarmAuthRefusals, AlarmInternalErrors, AlarmCertificateExpiry} {
			alarms = append(alarms, a.Alarms[AlarmName(ag.Name, kind)])
		}
	}
	alarms = append(alarms, a.Alarms[AlarmName(LambdaAgentName, AlarmLambdaErrors)], a.Alarms[AlarmName("documents", AlarmDLQDepth)])
	status := awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{
		Title:  jsii.String("Alarms"),
		Width:  jsii.Number(12),
		Height: jsii.Number(6),
		Alarms: &alarms,
	})
	rows = append(rows, []awscloudwatch.IWidget{expiry, status})

	var widgets []*[]awscloudwatch.IWidget
	for _, r := range rows {
		widgets = append(widgets, &r)
	}
	a.Dashboard = awscloudwatch.NewDashboard(a.Stack, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName:   jsii.String(DashboardName),
		DefaultInterval: awscdk.Duration_Hours(jsii.Number(3)),
		Widgets:         &widgets,
	})
}
