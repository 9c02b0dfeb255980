module github.com/esimbatch/esimbatch

go 1.26.0

require github.com/sethvargo/go-envconfig v1.4.3
