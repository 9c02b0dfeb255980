module github.com/esimbatch/esimbatch

go 1.26.0

require github.com/sethvargo/go-envconfig v1.4.3

require (
	github.com/jmoiron/sqlx v1.4.0
	github.com/skip2/go-qrcode v0.0.0-20200617195104-da1b6568686e
)

require github.com/robfig/cron/v3 v3.0.1 // indirect
