'''Trains a simple deep NN on the MNIST dataset.

Gets to 98.40% test accuracy after 20 epochs
(there is *a lot* of margin for parameter tuning).
2 seconds per epoch on a K520 GPU.
'''
# keras-team/keras's examples/mnist_mlp.py as Keras 2.2 shipped it (MIT licence, (c) the Keras
# authors), unchanged but for the five import lines, which name tinynet where Keras was:
#     import keras                          ->  import tinynet as keras
#     from keras.datasets import mnist      ->  from tinynet.datasets import mnist
#     from keras.models import Sequential   ->  from tinynet import Sequential
#     from keras.layers import ...          ->  from tinynet.layers import ...
#     from keras.optimizers import RMSprop  ->  from tinynet.optimizers import RMSprop
# tests/test_keras_examples.py runs it on a slice of the data.
#
#     python examples/keras_mnist_mlp.py

from __future__ import print_function

import tinynet as keras
from tinynet.datasets import mnist
from tinynet import Sequential
from tinynet.layers import Dense, Dropout
from tinynet.optimizers import RMSprop

batch_size = 128
num_classes = 10
epochs = 20

# the data, split between train and test sets
(x_train, y_train), (x_test, y_test) = mnist.load_data()

x_train = x_train.reshape(60000, 784)
x_test = x_test.reshape(10000, 784)
x_train = x_train.astype('float32')
x_test = x_test.astype('float32')
x_train /= 255
x_test /= 255
print(x_train.shape[0], 'train samples')
print(x_test.shape[0], 'test samples')

# convert class vectors to binary class matrices
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = Sequential()
model.add(Dense(512, activation='relu', input_shape=(784,)))
model.add(Dropout(0.2))
model.add(Dense(512, activation='relu'))
model.add(Dropout(0.2))
model.add(Dense(num_classes, activation='softmax'))

model.summary()

model.compile(loss='categorical_crossentropy',
              optimizer=RMSprop(),
              metrics=['accuracy'])

history = model.fit(x_train, y_train,
                    batch_size=batch_size,
                    epochs=epochs,
                    verbose=1,
                    validation_data=(x_test, y_test))
score = model.evaluate(x_test, y_test, verbose=0)
print('Test loss:', score[0])
print('Test accuracy:', score[1])
