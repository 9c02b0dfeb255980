module github.com/esimbatch/esimbatch

go 1.26.0

require (
	github.com/makiuchi-d/gozxing v0.1.1
	github.com/sethvargo/go-envconfig v1.4.3
	github.com/skip2/go-qrcode v0.0.0-20200617195104-da1b6568686e
)

require (
	golang.org/x/text v0.44.0 // indirect
	golang.org/x/xerrors v0.0.0-20200804184101-5ec99f83aff1 // indirect
)
