// Package reports turns plain report data into Excel workbooks (QR codes,
// failures, rejected imports, summary) and delivers them by SMTP or as .eml
// files. It knows nothing of the database or Octane.
package reports
