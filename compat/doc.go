// Package compat holds compatibility tests of commitlog's Kafka protocol
// server against third-party Kafka clients (IBM/sarama and
// segmentio/kafka-go). It is a separate module so that those clients never
// enter the library's module graph.
package compat
