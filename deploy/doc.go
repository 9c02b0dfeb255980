// Package deploy holds the Kubernetes manifests of esimbatch: the CronJob
// running `batch run`, the Job running `batch migrate`, example/ with the
// ConfigMap and Secret they read, and helm/esimbatch, the Helm chart that
// runs one CronJob per Octane credential. It has no code; its tests decode
// every manifest, and every document the chart renders with Helm's own
// engine, strictly into the Kubernetes API types and check the settings the
// job relies on (README "Deploying").
package deploy
