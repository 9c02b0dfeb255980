module github.com/esimbatch/esimbatch

go 1.26.0

require github.com/sethvargo/go-envconfig v1.4.3

require (
	github.com/jmoiron/sqlx v1.4.0 // indirect
	github.com/robfig/cron/v3 v3.0.1 // indirect
)
