// Package deploy holds the Kubernetes manifests of esimbatch: the CronJob
// running `batch run`, the Job running `batch migrate`, and example/ with the
// ConfigMap and Secret they read. It has no code; its test decodes every
// manifest strictly into the Kubernetes API types and checks the settings
// the job relies on (README "Deploying").
package deploy
